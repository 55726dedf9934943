"""Selftok's catalogue: the four released checkpoints (512 / 1024 tokens, flow or renderer decoder) and the tiny model."""

from __future__ import annotations

from zoo.registry import PretrainedCfg, Variant, embedded_variant, family_spec

from . import convert
from .config import SelftokConfig
from .model import HUB_ID, LICENSE, PAPER, UPSTREAM, Selftok


TINY_CONFIG = SelftokConfig(
    image_size=64, num_tokens=16, k_per_stage=(6, 5, 2, 2, 1),
    encoder_width=32, encoder_heads=2, encoder_depth=2, query_width=64, query_heads=4, encoder_pos_max=16,
    codebook_size=64, decoder_depth=2, decoder_pos_max=8,
    vae="dct", latent_shift=0.0, latent_scale=0.25,
)

_1024 = dict(num_tokens=1024, stages=(1000,), k_per_stage=(1024,))  # schedule unpublished; see NOTES.md
_RENDERER = dict(decoder="renderer", context_see_xt=False)


def _pre(filename: str) -> PretrainedCfg:
    return PretrainedCfg(hub_id=HUB_ID, filename=filename, license=LICENSE, paper=PAPER)


VARIANTS = (
    Variant("selftok-512", SelftokConfig(), _pre("tokenizer_512_ckpt.pth"),
            description="512 tokens / 256px image, 32,768-code cosine VQ, 50-step rectified-flow MMDiT decoder."),
    Variant("selftok-512-renderer", SelftokConfig(**_RENDERER), _pre("renderer_512_ckpt.pth"),
            description="Same encoder and tokens as selftok-512; one-step MMDiT renderer decoder."),
    Variant("selftok-1024", SelftokConfig(**_1024), _pre("tokenizer_1024_ckpt.pth"),
            description="1024 tokens / 256px image, 50-step rectified-flow MMDiT decoder (token schedule unpublished)."),
    Variant("selftok-1024-renderer", SelftokConfig(**_1024, **_RENDERER), _pre("renderer_1024_ckpt.pth"),
            description="1024 tokens / 256px image, one-step renderer decoder."),
    embedded_variant("selftok-tiny-64", TINY_CONFIG, "selftok/tiny-64",
                     "Tiny 64px / 16-token Selftok with a fixed DCT latent instead of the SD3 VAE (tests, CPU)."),
)

FAMILY = family_spec("selftok", Selftok, VARIANTS, convert, paper=PAPER, upstream=UPSTREAM, tiny_config=TINY_CONFIG,
                     description="1D image tokens ordered by a diffusion decoder (token k visible only above a noise level).")
