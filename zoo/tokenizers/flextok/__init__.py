"""FlexTok (arXiv 2502.13967): `model.py` the tokenizer, `vae.py` its VAE and the standalone released VAEs,
`convert.py` the official checkpoints and VAEs, `variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import (TRAINING_ONLY_KEYS, from_official_config, load_released_vae, load_vae_weights, released_vae,
                      remap_state_dict, vae_config_from_diffusers)
from .model import (
    FLEXTOK_ADALN_ORDER,
    PAPER,
    UPSTREAM,
    WEIGHTS_LICENSE,
    FlexTok,
    FlexTokConfig,
    FlexTokDecoder,
    FlexTokEncoder,
    patchify,
    unpatchify,
)
from .vae import FlexTokVAE, FlexTokVAEConfig, build_vae
from .variants import FAMILY, TINY_64_CONFIG, TINY_CONFIG, VARIANTS

__all__ = [
    "FAMILY", "FLEXTOK_ADALN_ORDER", "PAPER", "TINY_64_CONFIG", "TINY_CONFIG", "TRAINING_ONLY_KEYS", "UPSTREAM",
    "VARIANTS", "WEIGHTS_LICENSE", "FlexTok", "FlexTokConfig", "FlexTokDecoder", "FlexTokEncoder", "FlexTokVAE",
    "FlexTokVAEConfig", "build_vae", "from_official_config", "load_released_vae", "load_vae_weights", "patchify",
    "released_vae", "remap_state_dict", "unpatchify", "vae_config_from_diffusers",
]
