"""One-D-Piece's catalogue: the released S/B/L-256 checkpoints, the tiny model trained here, the test config."""

from __future__ import annotations

from zoo.registry import PretrainedCfg, Variant, embedded_variant, family_spec

from . import convert
from .model import PAPER, UPSTREAM, VIT_SIZES, OneDPiece, OneDPieceConfig


def _sized(size: str) -> dict[str, int]:
    w, d, h = VIT_SIZES[size]
    return dict(encoder_width=w, encoder_depth=d, encoder_heads=h, decoder_width=w, decoder_depth=d, decoder_heads=h)


S_256 = OneDPieceConfig()
B_256 = OneDPieceConfig(**_sized("base"))
L_256 = OneDPieceConfig(**_sized("large"))
# Trained here (embedded default): 64x64 images, 32 tokens.
TINY_64 = OneDPieceConfig(
    image_size=64, encoder_patch_size=8, decoder_patch_size=8, num_latent_tokens=32, codebook_size=1024,
    encoder_width=128, encoder_depth=2, encoder_heads=4, decoder_width=128, decoder_depth=2, decoder_heads=4,
    proxy_codebook_size=256, proxy_dim=32, pixel_channels=32, pixel_channel_mult=(1, 1, 2, 2),
)
# The smallest config, for the contract tests (32x32 images, 8 tokens).
TINY_TEST = OneDPieceConfig(
    image_size=32, encoder_patch_size=8, decoder_patch_size=8, num_latent_tokens=8, codebook_size=64,
    encoder_width=32, encoder_depth=1, encoder_heads=2, decoder_width=32, decoder_depth=1, decoder_heads=2,
    proxy_codebook_size=32, proxy_dim=16, pixel_channels=32, pixel_channel_mult=(1, 1, 1, 1),
)


def _released(size: str, cfg: OneDPieceConfig, params: str, revision: str | None = None) -> Variant:
    return Variant(
        name=f"one-d-piece-{size.lower()}-256",
        config=cfg,
        pretrained=PretrainedCfg(
            hub_id=f"turing-motors/One-D-Piece-{size}-256",
            filename="pytorch_model.bin",
            revision=revision,
            license="apache-2.0",
            paper=PAPER,
        ),
        description=(f"One-D-Piece-{size}-256 (Turing Inc.): 256x256 images -> 1 to 256 ordered tokens, "
                     f"codebook 4096, ViT-{size} encoder/decoder + MaskGIT-VQGAN pixel decoder, {params} parameters."),
    )


VARIANTS: tuple[Variant, ...] = (
    _released("S", S_256, "83.9 M", revision="250e95dcb0b29fcfeef4396d1788a9dbd18ca455"),  # a snapshot seen in public code
    _released("B", B_256, "205.3 M"),
    _released("L", L_256, "641.7 M"),
    embedded_variant("one-d-piece-tiny-64", TINY_64, "one_d_piece/tiny-64",
                     "A tiny One-D-Piece trained here on CPU: 64x64 images -> 1 to 32 tokens, codebook 1024."),
)


FAMILY = family_spec("one_d_piece", OneDPiece, VARIANTS, convert, paper=PAPER, upstream=UPSTREAM, tiny_config=TINY_TEST,
                     description="Ordered 1D image tokens with Tail Token Drop: any prefix decodes (quality-controllable compression).")
