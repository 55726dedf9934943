"""XY-Tokenizer (arXiv 2506.23325): `model.py` the tokenizer, `stream.py` its chunked encoder and decoder,
`convert.py` the official checkpoints, `variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import TRAINING_ONLY_KEYS, from_official_config, remap_state_dict
from .model import PAPER, UPSTREAM, StackConfig, WhisperLogMel, XYTokenizer, XYTokenizerConfig, sinusoids, slaney_mel_filters
from .stream import XYDecoderStream, XYEncoderStream
from .variants import FAMILY, TINY_16K_CONFIG, TINY_CONFIG, VARIANTS

__all__ = [
    "FAMILY", "PAPER", "TINY_16K_CONFIG", "TINY_CONFIG", "TRAINING_ONLY_KEYS", "UPSTREAM", "VARIANTS", "StackConfig",
    "WhisperLogMel", "XYDecoderStream", "XYEncoderStream", "XYTokenizer", "XYTokenizerConfig", "from_official_config",
    "remap_state_dict", "sinusoids", "slaney_mel_filters",
]
