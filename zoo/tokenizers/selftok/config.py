"""Selftok's config and its token schedule (which tokens the decoder sees at which noise level)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SD3_VAE_REPO = "stabilityai/stable-diffusion-3-medium-diffusers"

# Per-token positions fed to the sinusoidal embedders: token k sits at "time" 1000 + 8 k, beyond the
# diffusion time range [0, 1000) (upstream DiTi.get_position).
_POS_OFFSET, _POS_STRIDE = 1000, 8


def token_positions(n: int, device=None) -> Tensor:
    return _POS_OFFSET + _POS_STRIDE * torch.arange(n, device=device)


@dataclass(frozen=True)
class SelftokConfig:
    """Defaults = the released 512-token tokenizer (configs/res256/256-eval.yml)."""

    image_size: int = 256  # pixels (square); the latent is image_size // 8
    latent_channels: int = 16  # SD3 VAE latent channels
    num_tokens: int = 512  # K: tokens per image
    stages: tuple[int, ...] = (200, 400, 600, 800, 1000)  # diffusion-time boundaries (x1000) of the schedule
    k_per_stage: tuple[int, ...] = (192, 184, 72, 48, 16)  # tokens unlocked over each stage (sum = K)
    # encoder (dual-stream Q-Former, upstream "Enc-Qformer-Uni-XL/2")
    encoder_patch_size: int = 2
    encoder_width: int = 64  # latent-patch stream width
    encoder_heads: int = 4
    encoder_depth: int = 16
    query_width: int = 512  # query stream width
    query_heads: int = 8
    encoder_pos_max: int = 64  # side of the stored 2D sin-cos table (2 x the latent side upstream)
    mlp_ratio: float = 4.0
    # quantizer (cosine-similarity VQ)
    codebook_size: int = 32768
    code_dim: int = 16  # codebook vector width (l2-normalised)
    token_dim: int = 16  # width of the decoder's conditioning ("encoder_hidden_size" upstream)
    post_norm: bool = True  # LayerNorm on the looked-up codes before the decoder
    codebook_ema_decay: float = 0.99  # training only: EMA codebook update
    commitment_weight: float = 1.0  # training only
    dead_code_threshold: float = 0.0  # training only: restart codes whose EMA count per batch falls below this (0 = off)
    # decoder
    decoder: str = "flow"  # "flow": MMDiT + rectified-flow sampler; "renderer": one-step MMDiT renderer
    decoder_depth: int = 24  # joint blocks; width = 64 * depth, heads = depth (SD3 MMDiT rule)
    decoder_patch_size: int = 2
    decoder_pos_max: int = 192  # side of the stored 2D position table (flow decoder)
    context_see_xt: bool = True  # token queries also attend to image keys (flow: yes, renderer: no)
    renderer_shared_mask_token: bool = True  # renderer: one mask token repeated (True) or one per patch
    sampling_steps: int = 50  # default Euler steps of the flow sampler
    # VAE between pixels and latents
    vae: str = "sd3"  # "sd3": diffusers AutoencoderKL from vae_repo; "dct": fixed 8x8 block-DCT (tests, tiny models)
    vae_repo: str = SD3_VAE_REPO  # hub repo holding the VAE in subfolder "vae" (loaded lazily, not in our weights)
    vae_dtype: str = "bfloat16"  # the official pipeline runs the VAE in bf16
    latent_shift: float = 0.0609  # latent = (z - shift) * scale (SD3LatentFormat)
    latent_scale: float = 1.5305

    def __post_init__(self):
        if self.decoder not in ("flow", "renderer"):
            raise ValueError(f"SelftokConfig.decoder must be 'flow' or 'renderer'; got {self.decoder!r}.")
        if self.vae not in ("sd3", "dct"):
            raise ValueError(f"SelftokConfig.vae must be 'sd3' or 'dct'; got {self.vae!r}.")
        if len(self.stages) != len(self.k_per_stage) or not self.stages:
            raise ValueError(f"stages {self.stages} and k_per_stage {self.k_per_stage} must be non-empty and of equal length.")
        if list(self.stages) != sorted(set(self.stages)) or self.stages[0] <= 0:
            raise ValueError(f"stages must be strictly increasing positive times; got {self.stages}.")
        if sum(self.k_per_stage) != self.num_tokens:
            raise ValueError(f"k_per_stage {self.k_per_stage} sums to {sum(self.k_per_stage)}, not num_tokens={self.num_tokens}.")
        if self.image_size % (8 * self.encoder_patch_size) or self.image_size % (8 * self.decoder_patch_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by 8 x the patch sizes.")

    @property
    def latent_size(self) -> int:
        return self.image_size // 8

    @property
    def decoder_width(self) -> int:
        return 64 * self.decoder_depth


# ----------------------------------------------------------------------------------------------
# the token schedule
# ----------------------------------------------------------------------------------------------
def last_visible_token(time_index: Tensor, cfg: SelftokConfig) -> Tensor:
    """Index of the last token the decoder sees at integer diffusion time T in [0, 1000].

    On stage i (T in [s_i, s_{i+1})): k = (k_1 + ... + k_{i-1}) + floor((T - s_i) * k_i / (s_{i+1} - s_i)),
    clamped to [0, K - 1]; tokens 0..k are visible. The slope is applied in float32 and truncated,
    as upstream (DiTi_cont), so that the mask matches at stage borders. time_index: int [N] -> [N].
    """
    t = time_index.long()
    idx = torch.zeros_like(t)
    low, base = 0, 0
    for stop, k in zip(cfg.stages, cfg.k_per_stage):
        slope = float(k) / (stop - low)
        xp = t - low
        idx = torch.where(xp >= 0, (slope * xp).long() + base, idx)  # float32 product, truncated
        low, base = stop, base + k
    return idx.clamp(0, cfg.num_tokens - 1)


def time_index(t: Tensor) -> Tensor:
    """Rectified-flow time t in [0, 1] (1 = pure noise) -> the integer time floor(1000 t) of the schedule."""
    return (t.float() * 1000.0).long()
