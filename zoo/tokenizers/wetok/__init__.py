"""WeTok (arXiv 2508.05599): `model.py` the tokenizer, `convert.py` the official checkpoints, `variants.py`
the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import EMA_PREFIX, IGNORED_KEYS, IGNORED_PREFIXES, from_official_config, remap_state_dict
from .model import HUB_ID, NORM_EPS, NUM_GROUPS_NORM, PAPER, UPSTREAM, AdaptiveGroupNorm, Decoder, Encoder, WeTok, WeTokConfig
from .variants import FAMILY, TINY_CONFIG, VARIANTS

__all__ = [
    "EMA_PREFIX", "FAMILY", "HUB_ID", "IGNORED_KEYS", "IGNORED_PREFIXES", "NORM_EPS", "NUM_GROUPS_NORM", "PAPER",
    "TINY_CONFIG", "UPSTREAM", "VARIANTS", "AdaptiveGroupNorm", "Decoder", "Encoder", "WeTok", "WeTokConfig",
    "from_official_config", "remap_state_dict",
]
