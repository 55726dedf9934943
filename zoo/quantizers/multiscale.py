"""Multi-scale residual quantization (VAR-style), over a 1D token axis or a 2D grid, and a Gaussian
bottleneck to put in front of it (VAT's variational vector quantization).

Papers: Tian et al., "Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale
Prediction" (VAR), arXiv:2404.02905, reference code FoundationVision/VAR `models/quant.py` (MIT),
read, not copied; Zhang et al., "3D representation in 512-Byte: Variational tokenizer is the key for
autoregressive 3D generation" (VAT), arXiv:2412.02202 (multi-scale residual quantization of a Gaussian
latent on a 1D token axis; no code released).
vector-quantize-pytorch has no multi-scale residual quantizer, hence this file.

Algorithm (for scales s = 1..S with token counts n_1 < ... < n_S = N, or grids h_s x w_s):
  rest = z (detached);  f_hat = 0
  for each scale: r_s = downsample(rest, n_s)   (area / adaptive average; identity at the last scale)
                  ids_s = nearest(r_s) in the SHARED codebook
                  h_s = phi_s(upsample(codebook[ids_s], N))   (upsample: linear (1D) / bicubic (2D))
                  f_hat += h_s;  rest -= h_s
  phi_s(h) = (1 - ratio) * h + ratio * conv_k(h), with `num_phi` convs shared across scales: scale s
  uses the conv whose tick (linspace(1/(3P), 1 - 1/(3P), P)) is nearest to s / (S - 1) (VAR's
  "partially shared" phi). Losses (mean over scales): commitment = w_c * ||sg(f_hat_s) - z||^2, and for
  a learned codebook codebook = w_b * ||f_hat_s - sg(z)||^2 (computed in training or when grad is
  enabled; an eval forward under no_grad returns no losses). Output: z + sg(f_hat - z) (straight-through).
ids: the scales concatenated on the last axis, [B, sum_s n_s] (2D: each scale flattened row-major).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.quantizers.base import Quantizer, QuantizerOutput
from zoo.quantizers.vq import VectorQuantizer, usage_metrics

__all__ = ["MultiScaleResidualQuantizer", "Phi", "GaussianBottleneck", "GaussianOutput"]


class Phi(nn.Module):
    """Refinement of an upsampled scale: (1 - ratio) * h + ratio * conv(h), channel first [B, D, *S]."""

    def __init__(self, dim: int, ratio: float = 0.5, kernel_size: int = 3, spatial_dims: int = 1):
        super().__init__()
        conv = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        self.conv = conv(dim, dim, kernel_size, padding=kernel_size // 2)
        self.ratio = ratio

    def forward(self, h: Tensor) -> Tensor:
        return h * (1 - self.ratio) + self.conv(h) * self.ratio


class MultiScaleResidualQuantizer(Quantizer):
    """z: 1D [B, N, D] or 2D [B, H, W, D] (channel last) -> QuantizerOutput(quantized (same shape),
    ids [B, sum_s n_s] int64, losses, metrics).

    Args:
      dim: D (the codebook dimension; no projections, as VAR).
      codebook_size: size of the one codebook shared by every scale.
      scales: 1D: token counts per scale, increasing, e.g. (1, 2, 3, 4, 6, 8); the last one is N.
        2D: side lengths (h = w) or (h, w) pairs per scale, e.g. (1, 2, 3, 4, 5, 6, 8, 10, 13, 16).
      spatial_dims: 1 or 2.
      num_phi: number of refinement convs shared across scales (0 or phi_ratio 0 -> no phi).
      phi_ratio, phi_kernel: see `Phi`.
      upsample_mode: default "linear" (1D) / "bicubic" (2D), as VAR.
      commitment_weight, codebook_weight: VAR's beta (0.25) and 1.0.
      codebook_options: the shared codebook's, a `VectorQuantizer` (module `codebook`) of width dim: cosine,
        ema_decay, kmeans_init, kmeans_iters, dead_code_threshold, eps. Its EMA / restarts see every scale's
        vectors; its own losses are off (the two weights above apply to the sum over scales).
    Eval mode is deterministic and never writes a buffer.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        scales: Sequence[int] | Sequence[tuple[int, int]],
        *,
        spatial_dims: int = 1,
        num_phi: int = 4,
        phi_ratio: float = 0.5,
        phi_kernel: int = 3,
        upsample_mode: str | None = None,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        **codebook_options,
    ):
        super().__init__()
        if {"codebook_dim", "output_dim"} & set(codebook_options):
            raise ValueError("MultiScaleResidualQuantizer looks codes up in dim itself (no projections, as VAR); "
                             "it takes no codebook_dim or output_dim.")
        if spatial_dims not in (1, 2):
            raise ValueError(f"spatial_dims must be 1 (token axis) or 2 (grid); got {spatial_dims}.")
        sizes = [tuple(s) if isinstance(s, (tuple, list)) else ((s,) if spatial_dims == 1 else (s, s)) for s in scales]
        if not sizes or any(len(s) != spatial_dims or min(s) < 1 for s in sizes):
            raise ValueError(f"scales must be positive sizes with {spatial_dims} value(s) each; got {list(scales)}.")
        if any(math.prod(a) >= math.prod(b) for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"scales must grow strictly in token count; got {sizes}.")
        self.dim, self.codebook_size, self.spatial_dims = dim, codebook_size, spatial_dims
        self.scale_shapes: list[tuple[int, ...]] = sizes
        self.scale_sizes: list[int] = [math.prod(s) for s in sizes]  # tokens per scale
        self.upsample_mode = upsample_mode or ("linear" if spatial_dims == 1 else "bicubic")
        self.commitment_weight, self.codebook_weight = commitment_weight, codebook_weight
        self.codebook = VectorQuantizer(dim, codebook_size, commitment_weight=0.0, codebook_weight=0.0, **codebook_options)
        use_phi = num_phi > 0 and abs(phi_ratio) > 1e-6
        self.phis = nn.ModuleList(
            Phi(dim, abs(phi_ratio), phi_kernel, spatial_dims) for _ in range(num_phi if use_phi else 0)
        )

    @property
    def num_scales(self) -> int:
        return len(self.scale_shapes)

    @property
    def num_tokens(self) -> int:
        return sum(self.scale_sizes)

    def _phi(self, s: int, h: Tensor) -> Tensor:
        """Apply scale s's (partially shared) refinement to h [B, D, *S]."""
        if not self.phis:
            return h
        p = len(self.phis)
        at = s / (self.num_scales - 1) if self.num_scales > 1 else 0.0
        ticks = torch.linspace(1 / 3 / p, 1 - 1 / 3 / p, p)
        return self.phis[int((ticks - at).abs().argmin())](h)

    def _up(self, h: Tensor, full: tuple[int, ...]) -> Tensor:
        """h [B, D, *s] -> [B, D, *full]."""
        if tuple(h.shape[2:]) == tuple(full):
            return h
        return F.interpolate(h, size=full, mode=self.upsample_mode)

    def _check_input(self, z: Tensor) -> tuple[int, ...]:
        if z.ndim != self.spatial_dims + 2 or z.shape[-1] != self.dim:
            want = "[B, N, D]" if self.spatial_dims == 1 else "[B, H, W, D]"
            raise ValueError(f"MultiScaleResidualQuantizer expects {want} with D={self.dim}; got shape {list(z.shape)}.")
        full = tuple(z.shape[1:-1])
        if full != self.scale_shapes[-1]:
            raise ValueError(f"the last scale {self.scale_shapes[-1]} must equal the input's token shape; got {full}.")
        return full

    def forward(self, z: Tensor) -> QuantizerOutput:
        full = self._check_input(z)
        b = z.shape[0]
        f = z.movedim(-1, 1)  # [B, D, *full]
        rest = f.detach().clone()
        f_hat = torch.zeros_like(rest)
        ids_all, commit, cb = [], 0.0, 0.0
        want_losses = self.training or torch.is_grad_enabled()  # skip them in no-grad evaluation
        for s, shape in enumerate(self.scale_shapes):
            r = rest if shape == full else F.interpolate(rest, size=shape, mode="area")  # [B, D, *shape]
            r_flat = r.movedim(1, -1).reshape(-1, self.dim)  # [B * n_s, D]
            ids = self.codebook(r_flat).ids  # [B * n_s] (EMA / restarts happen here in training)
            codes = self.codebook.ids_to_codes(ids)  # [B * n_s, D], differentiable w.r.t. a learned codebook
            h = codes.reshape(b, *shape, self.dim).movedim(-1, 1)  # [B, D, *shape]
            h = self._phi(s, self._up(h, full))
            f_hat = f_hat + h
            rest = rest - h.detach()
            ids_all.append(ids.reshape(b, -1))  # [B, n_s]
            if want_losses:
                commit = commit + F.mse_loss(f_hat.detach(), f)
                cb = cb + F.mse_loss(f_hat, f.detach())
        losses = {}
        if want_losses and self.commitment_weight > 0:
            losses["commitment"] = self.commitment_weight * commit / self.num_scales
        if want_losses and not self.codebook.uses_ema and self.codebook_weight > 0:
            losses["codebook"] = self.codebook_weight * cb / self.num_scales
        quantized = f_hat if not f.requires_grad else f + (f_hat - f).detach()  # straight-through
        ids = torch.cat(ids_all, dim=-1)  # [B, sum n_s]
        return QuantizerOutput(
            quantized=quantized.movedim(1, -1), ids=ids, losses=losses, metrics=usage_metrics(ids, self.codebook_size)
        )

    # ------------------------------------------------------------------ ids
    def scales_in(self, ids: Tensor) -> int:
        """How many leading scales `ids` [B, n] holds; n must be a cumulative scale size."""
        cum = [sum(self.scale_sizes[: i + 1]) for i in range(self.num_scales)]
        if ids.ndim != 2 or ids.shape[-1] not in cum:
            raise ValueError(f"multi-scale ids are [B, n] with n one of {cum} (first s scales); got shape {list(ids.shape)}.")
        return cum.index(ids.shape[-1]) + 1

    def split_ids(self, ids: Tensor) -> list[Tensor]:
        """[B, n] -> per-scale ids, each [B, *scale_shape]."""
        s = self.scales_in(ids)
        parts = ids.split(self.scale_sizes[:s], dim=-1)
        return [p.reshape(ids.shape[0], *shape) for p, shape in zip(parts, self.scale_shapes)]

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """ids [B, n] -> codebook vectors [B, n, D] (each scale at its own resolution, concatenated)."""
        self.scales_in(ids)
        self.check_ids(ids)
        return self.codebook.ids_to_codes(ids)

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """codebook vectors [B, n, D] -> ids [B, n]."""
        return self.codebook.codes_to_ids(codes)

    def ids_to_quantized(self, ids: Tensor) -> Tensor:
        """ids of the first s scales [B, n] -> f_hat after s scales at full resolution ([B, N, D] / [B, H, W, D])."""
        self.check_ids(ids)
        full = self.scale_shapes[-1]
        f_hat = None
        for s, part in enumerate(self.split_ids(ids)):
            h = self.codebook.ids_to_codes(part).movedim(-1, 1)  # [B, D, *shape]
            h = self._phi(s, self._up(h, full))
            f_hat = h if f_hat is None else f_hat + h
        return f_hat.movedim(1, -1)

    def next_scale_inputs(self, ids: Tensor) -> Tensor:
        """Teacher-forcing inputs for a next-scale autoregressive model (VAR's idxBl_to_var_input):
        ids [B, n] of the first s scales -> [B, m, D], for each scale k = 1..min(s, S-1) the running
        f_hat after k scales downsampled (area) to scale k+1's shape, flattened and concatenated."""
        self.check_ids(ids)
        full = self.scale_shapes[-1]
        parts = self.split_ids(ids)
        f_hat, out = None, []
        for s, part in enumerate(parts[: self.num_scales - 1]):
            h = self._phi(s, self._up(self.codebook.ids_to_codes(part).movedim(-1, 1), full))
            f_hat = h if f_hat is None else f_hat + h
            nxt = F.interpolate(f_hat, size=self.scale_shapes[s + 1], mode="area")  # [B, D, *next]
            out.append(nxt.flatten(2).transpose(1, 2))  # [B, n_{s+1}, D]
        if not out:
            return ids.new_zeros(ids.shape[0], 0, self.dim, dtype=torch.float32)
        return torch.cat(out, dim=1)


@dataclass
class GaussianOutput:
    """sample: [..., latent_dim] (reparameterised in training, the mean in eval); mean, logvar: same
    shape; kl: scalar KL(q || N(0, I)), summed over channels, averaged over the rest."""

    sample: Tensor
    mean: Tensor
    logvar: Tensor
    kl: Tensor


class GaussianBottleneck(nn.Module):
    """Diagonal Gaussian posterior (VAE bottleneck), channel last: [..., dim] -> GaussianOutput.

    `proj` is nn.Linear(dim, 2 * latent_dim) (mean, log-variance halves, in that order); with
    `project=False` the input itself holds the two halves (dim = 2 * latent_dim). logvar is clamped to
    [logvar_min, logvar_max]. Compose with MultiScaleResidualQuantizer: quantize `out.sample`.
    forward(x, generator=None, sample=None): sample defaults to self.training; a seeded generator
    makes the noise reproducible.
    """

    def __init__(self, dim: int, latent_dim: int | None = None, *, project: bool = True,
                 logvar_min: float = -30.0, logvar_max: float = 20.0):
        super().__init__()
        if not project and (latent_dim is not None and dim != 2 * latent_dim or dim % 2):
            raise ValueError(f"without a projection the input holds mean and logvar: dim must be 2 * latent_dim; got {dim}, {latent_dim}.")
        self.latent_dim = (latent_dim or dim) if project else dim // 2
        self.dim = dim
        self.proj = nn.Linear(dim, 2 * self.latent_dim) if project else nn.Identity()
        self.logvar_min, self.logvar_max = logvar_min, logvar_max

    def forward(self, x: Tensor, generator: torch.Generator | None = None, sample: bool | None = None) -> GaussianOutput:
        if x.shape[-1] != self.dim:
            raise ValueError(f"GaussianBottleneck expects [..., {self.dim}]; got shape {list(x.shape)}.")
        mean, logvar = self.proj(x).chunk(2, dim=-1)  # [..., L] each
        logvar = logvar.clamp(self.logvar_min, self.logvar_max)
        sample = self.training if sample is None else sample
        if sample:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * noise
        else:
            z = mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        return GaussianOutput(sample=z, mean=mean, logvar=logvar, kl=kl)
