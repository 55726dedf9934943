"""FlexTok (arXiv 2502.13967): `model.py` the tokenizer, `convert.py` the official checkpoints and the
released VAE, `variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import TRAINING_ONLY_KEYS, from_official_config, load_vae_weights, remap_state_dict
from .model import (
    FLEXTOK_ADALN_ORDER,
    PAPER,
    UPSTREAM,
    WEIGHTS_LICENSE,
    FlexTok,
    FlexTokConfig,
    FlexTokDecoder,
    FlexTokEncoder,
    build_vae,
    patchify,
    unpatchify,
)
from .variants import FAMILY, TINY_64_CONFIG, TINY_CONFIG, VARIANTS

__all__ = [
    "FAMILY", "FLEXTOK_ADALN_ORDER", "PAPER", "TINY_64_CONFIG", "TINY_CONFIG", "TRAINING_ONLY_KEYS", "UPSTREAM",
    "VARIANTS", "WEIGHTS_LICENSE", "FlexTok", "FlexTokConfig", "FlexTokDecoder", "FlexTokEncoder", "build_vae",
    "from_official_config", "load_vae_weights", "patchify", "remap_state_dict", "unpatchify",
]
