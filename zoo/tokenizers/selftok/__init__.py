"""Selftok (arXiv 2505.07538): `config.py` the config and token schedule, `networks.py` the Q-Former
encoder and MMDiT decoders, `model.py` the tokenizer, `convert.py` the official checkpoints and the
SD3 VAE, `variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .config import SD3_VAE_REPO, SelftokConfig, last_visible_token, time_index, token_positions
from .convert import DROPPED_KEY_PATTERNS, _dropped, from_official_config, load_vae, remap_state_dict
from .model import HUB_ID, LICENSE, PAPER, UPSTREAM, Selftok, SelftokEncoding, _dct_basis
from .networks import FlowDecoder, MMDiT, Renderer, SelftokEncoder
from .variants import FAMILY, TINY_CONFIG, VARIANTS

__all__ = [
    "DROPPED_KEY_PATTERNS", "FAMILY", "FlowDecoder", "HUB_ID", "LICENSE", "MMDiT", "PAPER", "Renderer", "SD3_VAE_REPO",
    "Selftok", "SelftokConfig", "SelftokEncoder", "SelftokEncoding", "TINY_CONFIG", "UPSTREAM", "VARIANTS",
    "from_official_config", "last_visible_token", "load_vae", "remap_state_dict", "time_index", "token_positions",
]
