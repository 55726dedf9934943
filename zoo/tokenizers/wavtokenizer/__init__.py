"""WavTokenizer (arXiv 2408.16532): `model.py` the tokenizer, `convert.py` the official checkpoints,
`variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import (
    _ENC,
    _VQ,
    _VQ_RENAMES,
    TRAINING_ONLY_PREFIXES,
    config_from_state_dict,
    from_official_config,
    remap_state_dict,
)
from .model import (
    LICENSE,
    PAPER,
    UPSTREAM,
    WavTokenizer,
    WavTokenizerConfig,
    WavTokenizerEncoderStream,
    group_by_length,
)
from .variants import CONFIG_40TPS, CONFIG_75TPS, FAMILY, TINY_CONFIG, VARIANTS

__all__ = [
    "CONFIG_40TPS", "CONFIG_75TPS", "FAMILY", "LICENSE", "PAPER", "TINY_CONFIG", "TRAINING_ONLY_PREFIXES", "UPSTREAM",
    "VARIANTS", "WavTokenizer", "WavTokenizerConfig", "WavTokenizerEncoderStream", "config_from_state_dict",
    "from_official_config", "group_by_length", "remap_state_dict",
]
