"""XY-Tokenizer's catalogue: the released 16/24/32 kHz codecs, the tiny model trained here, the test config."""

from __future__ import annotations

import dataclasses

from zoo.registry import PretrainedCfg, Variant, embedded_variant, family_spec

from . import convert
from .model import PAPER, UPSTREAM, StackConfig, XYTokenizer, XYTokenizerConfig


def _with_vocoder(n_fft: int, hop: int, rate: int) -> XYTokenizerConfig:
    return dataclasses.replace(XYTokenizerConfig(), vocos_n_fft=n_fft, vocos_hop=hop, output_sample_rate=rate)


def _small(d: int, heads: int, ffn: int, acoustic_layers: int, rvq_dim: int, vocos_hidden: int, vocos_layers: int
           ) -> XYTokenizerConfig:
    """A CPU-sized XY-Tokenizer: every stack `d` wide (the adapters at 2d / 4d where the upstream ones are
    wider than their neighbours), 256-code RVQ layers."""
    return XYTokenizerConfig(
        semantic_encoder=StackConfig(80, d, d, 1, heads, ffn, 1500),
        semantic_adapter=StackConfig(d, d, d, 1, heads, ffn, 1500),
        acoustic_encoder=StackConfig(80, d, d, acoustic_layers, heads, ffn, 1500),
        pre_rvq_adapter=StackConfig(2 * d, d, d, 1, heads, ffn, 1500),
        rvq_dim=rvq_dim,
        codebook_size=256,
        post_rvq_adapter=StackConfig(4 * d, d, 4 * d, 1, heads, ffn, 375),
        acoustic_decoder=StackConfig(d, d, 80, acoustic_layers, heads, ffn, 1500),
        vocos_dim=d,
        vocos_intermediate_dim=vocos_hidden,
        vocos_layers=vocos_layers,
    )


TINY_CONFIG = _small(32, heads=2, ffn=64, acoustic_layers=1, rvq_dim=16, vocos_hidden=64, vocos_layers=1)
# The embedded `xy-tokenizer-tiny-16k` (models/xy_tokenizer/tiny-16k, recipes/xy_tokenizer/tiny-cpu.yaml):
# 0.85 M parameters, 8 x 256 codes at 12.5 Hz (800 bps), trained here on CPU.
TINY_16K_CONFIG = _small(64, heads=4, ffn=128, acoustic_layers=2, rvq_dim=32, vocos_hidden=192, vocos_layers=4)

_LICENSE = "apache-2.0"
VARIANTS = (
    Variant(
        name="xy-tokenizer-16k",
        config=XYTokenizerConfig(),
        pretrained=PretrainedCfg(hub_id="fdugyt/XY_Tokenizer", filename="xy_tokenizer.ckpt", license=_LICENSE, paper=PAPER),
        description="XY-Tokenizer (paper model, Emilia): 16 kHz speech, 8 x 1024 RVQ codes at 12.5 Hz (1 kbps), 16 kHz decoder.",
    ),
    Variant(
        name="xy-tokenizer-ttsd-24k",
        config=_with_vocoder(960, 240, 24000),
        pretrained=PretrainedCfg(hub_id="fnlp/XY_Tokenizer_TTSD_V0", filename="xy_tokenizer.ckpt", license=_LICENSE, paper=PAPER,
                                 revision="c83433728e698ed0698e88cb5096bc221fb8f8c5"),  # pinned by MOSS-TTSD v0.5 users; NOTES.md
        description="MOSS-TTSD v0.5 codec: the XY-Tokenizer encoder with a 24 kHz Vocos decoder (same 1 kbps tokens).",
    ),
    Variant(
        name="xy-tokenizer-ttsd-32k",
        config=_with_vocoder(1280, 320, 32000),
        pretrained=PretrainedCfg(hub_id="fnlp/XY_Tokenizer_TTSD_V0_32k", filename="xy_tokenizer.ckpt", license=_LICENSE, paper=PAPER),
        description="MOSS-TTSD codec with a 32 kHz Vocos decoder retrained on full-band data (same 1 kbps tokens).",
    ),
    embedded_variant("xy-tokenizer-tiny-16k", TINY_16K_CONFIG, "xy_tokenizer/tiny-16k",
                     "A tiny XY-Tokenizer (0.85 M parameters, 8 x 256 codes, 800 bps) trained here on CPU on klettres speech (examples; not the paper model)."),
)

FAMILY = family_spec("xy_tokenizer", XYTokenizer, VARIANTS, convert, paper=PAPER, upstream=UPSTREAM, tiny_config=TINY_CONFIG,
                     description="Dual-tower (Whisper semantic + acoustic) speech codec, 8 x 1024 RVQ at 12.5 Hz, Vocos decoder.")
