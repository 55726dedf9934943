"""WeTok's catalogue: the six released checkpoints (ImageNet f8/f16, general-domain), the tiny model trained here."""

from __future__ import annotations

from zoo.registry import PretrainedCfg, Variant, embedded_variant, family_spec

from . import convert
from .model import HUB_ID, PAPER, UPSTREAM, WeTok, WeTokConfig

# Tiny: for the tests, CPU training and the embedded wetok-tiny-f8.
TINY_CONFIG = WeTokConfig(
    ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=16, num_groups=2, bits_per_group=8, image_size=64
)

_LICENSE = "apache-2.0"  # upstream code licence; the hub repo states no separate weights licence


def _official(name: str, folder: str, cfg: WeTokConfig, description: str,
              revision: str | None = None, sha256: str | None = None) -> Variant:
    return Variant(
        name=name,
        config=cfg,
        pretrained=PretrainedCfg(hub_id=HUB_ID, filename=f"{folder}/WeTok.ckpt", revision=revision, sha256=sha256,
                                 license=_LICENSE, paper=PAPER),
        description=description,
    )


_F8 = dict(ch_mult=(1, 2, 2, 4))
VARIANTS = (
    _official("wetok-imagenet-f8", "ImageNet/downsample8", WeTokConfig(**_F8),
              "ImageNet-trained, f8, 4 groups x 8 bits (32 bits per position), 32x32 positions at 256px."),
    _official("wetok-imagenet-f16", "ImageNet/downsample16", WeTokConfig(),
              "ImageNet-trained, f16, 4 groups x 8 bits (32 bits per position), 16x16 positions at 256px.",
              # a commit and the file's LFS sha256 recorded in public code; the other files are not yet pinned
              revision="85fc6eb084d458b8d4fa3a32d541379e95b2bf87",
              sha256="e40a0bcdefd8509b2201e93a9f5007d38c8fba9423c17a98b0e45f9e8763e696"),
    _official("wetok-general-cr24", "GeneralDomain/compratio24",
              WeTokConfig(**_F8, z_channels=64, num_groups=8),
              "General-domain, compression ratio 24: f8, 8 groups x 8 bits (64 bits per position)."),
    _official("wetok-general-cr48", "GeneralDomain/compratio48", WeTokConfig(**_F8),
              "General-domain, compression ratio 48: f8, 4 groups x 8 bits."),
    _official("wetok-general-cr192", "GeneralDomain/compratio192", WeTokConfig(),
              "General-domain, compression ratio 192: f16, 4 groups x 8 bits."),
    _official("wetok-general-cr768-gd", "GeneralDomain/compratio768",
              WeTokConfig(ch_mult=(1, 1, 2, 2, 4, 8), generative_decoder=True),
              "General-domain, compression ratio 768: f32, 4 groups x 8 bits, generative decoder (takes noise)."),
    embedded_variant("wetok-tiny-f8", TINY_CONFIG, "wetok/tiny-f8",
                     "A tiny f8 WeTok (2 groups x 8 bits) for tests and CPU training; trained here."),
)

FAMILY = family_spec("wetok", WeTok, VARIANTS, convert, paper=PAPER, upstream=UPSTREAM, tiny_config=TINY_CONFIG,
                     description="MAGVIT-2 style conv tokenizer with group-wise lookup-free quantization (WeTok).")
