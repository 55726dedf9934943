"""FlexTok's catalogue: the four released checkpoints (with the VAE each needs), the three standalone VAEs
(kind "vae": continuous latents, no tokens) and the tiny configs."""

from __future__ import annotations

from zoo.registry import PretrainedCfg, Variant, embedded_variant, family_spec

from . import convert
from .model import PAPER, UPSTREAM, WEIGHTS_LICENSE, FlexTok, FlexTokConfig
from .vae import FlexTokVAE, FlexTokVAEConfig


def _released(name: str, enc: tuple[int, int], dec: tuple[int, int], hub: str, vae: str, about: str,
              revision: str | None = None) -> Variant:
    cfg = FlexTokConfig(enc_dim=enc[1], enc_depth=enc[0], dec_dim=dec[1], dec_depth=dec[0])
    return Variant(
        name=name,
        config=cfg,
        pretrained=PretrainedCfg(hub_id=hub, filename="model.safetensors", revision=revision, license=WEIGHTS_LICENSE,
                                 paper=PAPER),
        description=about,
        extra={"vae_hub_id": vae},
    )


def _standalone_vae(channels: int, about: str) -> Variant:
    return Variant(
        name=f"flextok-vae-c{channels}",
        kind="vae",
        config=FlexTokVAEConfig(latent_channels=channels),  # sizes and scaling factor are read from its config.json
        pretrained=PretrainedCfg(hub_id=f"EPFL-VILAB/flextok_vae_c{channels}", filename=FlexTokVAE.released_weights,
                                 config_filename="config.json", license=WEIGHTS_LICENSE, paper=PAPER),
        description=f"FlexTok's standalone f8 VAE with {channels} latent channels (diffusers AutoencoderKL): images <-> "
                    f"continuous latents [{channels}, H/8, W/8] times the scaling factor in its config.json; no tokens.{about}",
    )


TINY_CONFIG = FlexTokConfig(
    image_size=64, num_registers=16, enc_dim=64, enc_depth=2, enc_head_dim=32, dec_dim=64, dec_depth=2, dec_head_dim=32,
    vae_block_out_channels=(16, 32, 32, 32), vae_layers_per_block=1, vae_norm_num_groups=8, vae_scaling_factor=0.5,
    decode_steps=4,
)

# The embedded default (models/flextok/tiny-64, trained here with recipes/flextok/tiny-cpu.yaml): pixel space, no VAE.
TINY_64_CONFIG = FlexTokConfig(
    latent_space="pixels", image_size=64, patch_size=4, num_registers=32, enc_dim=96, enc_depth=2, enc_head_dim=32,
    dec_dim=96, dec_depth=3, dec_head_dim=32, decode_steps=25, guidance_scale=1.0, apg=False,
)

VARIANTS: tuple[Variant, ...] = (
    _released("flextok-d12-d12-in1k", (12, 768), (12, 768), "EPFL-VILAB/flextok_d12_d12_in1k", "EPFL-VILAB/flextok_vae_c16",
              "FlexTok d12-d12 trained on ImageNet-1k: 1..256 tokens per 256x256 image, FSQ 64k codes.",
              revision="fe24b9794f32cc5c002781d25dd81a7768bed71c"),  # a snapshot seen in public code
    _released("flextok-d18-d18-in1k", (18, 1152), (18, 1152), "EPFL-VILAB/flextok_d18_d18_in1k", "EPFL-VILAB/flextok_vae_c16",
              "FlexTok d18-d18 trained on ImageNet-1k: 1..256 tokens per 256x256 image, FSQ 64k codes."),
    _released("flextok-d18-d28-in1k", (18, 1152), (28, 1792), "EPFL-VILAB/flextok_d18_d28_in1k", "EPFL-VILAB/flextok_vae_c16",
              "FlexTok d18-d28 trained on ImageNet-1k (the main release): 1..256 tokens per 256x256 image."),
    _released("flextok-d18-d28-dfn", (18, 1152), (28, 1792), "EPFL-VILAB/flextok_d18_d28_dfn", "EPFL-VILAB/flextok_vae_c16",
              "FlexTok d18-d28 trained on DFN image-text data: 1..256 tokens per 256x256 image."),
    embedded_variant("flextok-tiny-64", TINY_64_CONFIG, "flextok/tiny-64",
                     "Tiny pixel-space FlexTok for 64x64 images (1..32 tokens, no VAE), trained here on CPU on real "
                     "photos (recipes/flextok/tiny-cpu.yaml); a demonstration, far below the released models."),
    _standalone_vae(4, ""),
    _standalone_vae(8, ""),
    _standalone_vae(16, " The released FlexToks run on this one."),
)

FAMILY = family_spec("flextok", FlexTok, VARIANTS, convert, paper=PAPER, upstream=UPSTREAM, tiny_config=TINY_CONFIG,
                     description="Images -> ordered 1D FSQ tokens of any length 1..256; rectified-flow decoder (FlexTok, Apple/EPFL).",
                     autoencoder=FlexTokVAE)
