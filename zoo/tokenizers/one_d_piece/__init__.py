"""One-D-Piece (arXiv 2501.10064): `model.py` the tokenizer, `convert.py` the official (TiTok-layout)
checkpoints, `variants.py` the catalogue. `FAMILY` is what zoo.registry reads."""

from .convert import (
    TRAINING_ONLY_KEYS,
    from_official_config,
    maskgit_vqgan_stage2_state,
    maskgit_vqgan_teacher_sizes,
    maskgit_vqgan_teacher_state,
    remap_state_dict,
)
from .model import (
    PAPER,
    UPSTREAM,
    UPSTREAM_COMMIT,
    VIT_SIZES,
    OneDPiece,
    OneDPieceConfig,
    OneDPieceDecoder,
    OneDPieceEncoder,
)
from .variants import B_256, FAMILY, L_256, S_256, TINY_64, TINY_TEST, VARIANTS

__all__ = [
    "B_256", "FAMILY", "L_256", "PAPER", "S_256", "TINY_64", "TINY_TEST", "TRAINING_ONLY_KEYS", "UPSTREAM",
    "UPSTREAM_COMMIT", "VARIANTS", "VIT_SIZES", "OneDPiece", "OneDPieceConfig", "OneDPieceDecoder", "OneDPieceEncoder",
    "from_official_config", "maskgit_vqgan_stage2_state", "maskgit_vqgan_teacher_sizes", "maskgit_vqgan_teacher_state",
    "remap_state_dict",
]
