"""FlexTok's VAE: the frozen latent space of the tokenizer, and the released standalone VAEs.

Upstream (github.com/apple/ml-flextok, README "VAEs") releases its stage-0 autoencoders on their own as
EPFL-VILAB/flextok_vae_c4, _c8 and _c16: diffusers `AutoencoderKL`s in the SDXL-VAE layout, f8, block
widths [128, 256, 512, 512], 2 layers per block, GroupNorm 32, with 4, 8 or 16 latent channels; each
repo's `config.json` gives its `scaling_factor`. FlexTok runs on the scaled posterior mode of the c16 one.

`build_vae` builds the AutoencoderKL (our FlexTok holds one as `vae`); `FlexTokVAE` is the standalone
VAE behind the catalogue names flextok-vae-c4 / -c8 / -c16: images in [0, 1] -> latents x scaling
factor -> images in [0, 1], the ranges and the scaling FlexTok uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from zoo.api import Autoencoder, inference
from zoo.inputs import check_finite, prepare_images


@dataclass(frozen=True)
class FlexTokVAEConfig:
    """Defaults: flextok-vae-c16 (EPFL-VILAB/flextok_vae_c16), the VAE of the released FlexToks."""

    latent_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)  # one down / up block each; f = 2 ** (n - 1)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    # latents = posterior x scaling_factor. None in the catalogue: read from the release's config.json at load.
    scaling_factor: float | None = None
    sample_posterior: bool = False  # encode() default: the posterior mode (deterministic); True: a sample
    image_size: int = 256  # the side file readers (CLI) resize and centre-crop to: FlexTok's training size

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def build_vae(cfg: FlexTokVAEConfig) -> nn.Module:
    """A diffusers AutoencoderKL of these sizes (diffusers is imported here so that `import zoo` stays light)."""
    try:
        from diffusers.models import AutoencoderKL
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("FlexTok needs diffusers for its VAE: pip install diffusers") from e
    n = len(cfg.block_out_channels)
    extra = {} if cfg.scaling_factor is None else {"scaling_factor": cfg.scaling_factor}
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        act_fn="silu",
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=cfg.image_size,
        use_quant_conv=cfg.use_quant_conv,
        use_post_quant_conv=cfg.use_post_quant_conv,
        **extra,
    )


def vae_latents(vae: nn.Module, images: Tensor, scaling_factor: float, sample: bool = False,
                generator: torch.Generator | None = None) -> Tensor:
    """images [B, 3, H, W] in [-1, 1] -> scaled latents [B, C, H/f, W/f]: the posterior mode (or, with
    sample=True, mean + std * noise drawn from `generator` on its own device) times scaling_factor."""
    dist = vae.encode(images.to(vae.dtype)).latent_dist
    if sample:
        where = generator.device if generator is not None else dist.mean.device
        noise = torch.randn(dist.mean.shape, generator=generator, device=where, dtype=dist.mean.dtype)
        z = dist.mean + dist.std * noise.to(dist.mean.device)
    else:
        z = dist.mode()
    return z * scaling_factor


def vae_images(vae: nn.Module, latents: Tensor, scaling_factor: float) -> Tensor:
    """scaled latents [B, C, h, w] -> images [B, 3, f*h, f*w] in about [-1, 1] (not clamped)."""
    return vae.decode(latents.to(vae.dtype) / scaling_factor).sample


class FlexTokVAE(Autoencoder):
    """A FlexTok VAE on its own: images [B, 3, H, W] in [0, 1] <-> scaled latents [B, C, H/8, W/8].

    encode(x, sample=None, generator=None): the posterior mode x scaling factor (deterministic), or with
    sample=True a posterior sample drawn from `generator`; decode(latents): images in [0, 1] (clamped,
    as FlexTok.decode); reconstruct(x) = decode(encode(x)). Load it with `zoo.load("flextok-vae-c16")`.
    """

    family = "flextok"
    config_class = FlexTokVAEConfig
    # the released format (a diffusers folder): read by zoo.hub for catalogue names and local copies
    released_classes: ClassVar[tuple[str, ...]] = ("AutoencoderKL",)
    released_weights: ClassVar[str] = "diffusion_pytorch_model.safetensors"

    def __init__(self, cfg: FlexTokVAEConfig):
        super().__init__(cfg)
        self.vae = build_vae(cfg)

    @classmethod
    def from_released(cls, config_file: str | os.PathLike, weights_file: str | os.PathLike,
                      expected: FlexTokVAEConfig | None = None) -> "FlexTokVAE":
        """The release's diffusers config.json + weights -> FlexTokVAE, loaded strictly (zoo.hub calls this)."""
        from .convert import load_released_vae  # convert.py imports this module

        return load_released_vae(config_file, weights_file, expected)

    @property
    def scaling_factor(self) -> float:
        if self.cfg.scaling_factor is None:
            raise ValueError("This FlexTokVAE was built without a scaling factor (a catalogue config); load it with "
                             "zoo.load(name), which reads it from the release's config.json.")
        return self.cfg.scaling_factor

    @inference
    def encode(self, x: Tensor, sample: bool | None = None, generator: torch.Generator | None = None) -> Tensor:
        """x [B, 3, H, W] in [0, 1], sides multiples of 8 -> latents [B, C, H/8, W/8] (x scaling factor).
        sample: draw from the posterior instead of taking its mode (default cfg.sample_posterior)."""
        x = prepare_images(x, name="FlexTokVAE", multiple_of=self.downsample_factor)
        sample = self.cfg.sample_posterior if sample is None else bool(sample)
        return vae_latents(self.vae, x * 2 - 1, self.scaling_factor, sample, generator)

    @inference
    def decode(self, latents: Tensor) -> Tensor:
        """latents [B, C, h, w], scaled as encode gives them -> images [B, 3, 8h, 8w] in [0, 1]."""
        c = self.latent_channels
        if not isinstance(latents, Tensor) or latents.dim() != 4 or latents.shape[1] != c or not latents.is_floating_point():
            got = list(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
            raise ValueError(f"FlexTokVAE decodes float latents [B, {c}, h, w] (from its encode); got {got}.")
        check_finite(latents, "FlexTokVAE latents")
        return (vae_images(self.vae, latents, self.scaling_factor).clamp(-1, 1) + 1) / 2

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        f = self.downsample_factor
        return torch.rand((batch_size, 3, 4 * f, 4 * f), generator=generator), {}
