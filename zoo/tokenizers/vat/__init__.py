"""VAT, the Variational Tokenizer (arXiv 2412.02202): `model.py` the tokenizer, `convert.py` checkpoint
loading (no official layout exists), `variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import TRAINING_ONLY_PREFIXES, from_official_config, remap_state_dict
from .model import PAPER, UPSTREAM, VAT, VATConfig, VATDecoder, VATEncoder
from .variants import FAMILY, TINY_CONFIG, VARIANTS

__all__ = [
    "FAMILY", "PAPER", "TINY_CONFIG", "TRAINING_ONLY_PREFIXES", "UPSTREAM", "VARIANTS", "VAT", "VATConfig", "VATDecoder",
    "VATEncoder", "from_official_config", "remap_state_dict",
]
