"""Triplane pieces (VAT is their only user so far; kept here as EG3D's general 3D representation):
Fourier features of 3D points, a CNN that upsamples three feature planes, and bilinear sampling of the
planes at query points.

The triplane representation is EG3D's (Chan et al., arXiv 2112.07945); decoding a triplane from a
transformer's plane tokens and upsampling it with a small CNN follows LRM (Hong et al., arXiv
2311.04400) as VAT describes its decoder (arXiv 2412.02202). The Fourier point embedding is NeRF's
positional encoding as 3DShape2VecSet (arXiv 2301.11445) uses it. Written here from the papers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# The three axis-aligned planes, as the coordinate pairs that index them (u -> width, v -> height).
PLANE_AXES = ((0, 1), (0, 2), (1, 2))  # xy, xz, yz


def fourier_features(x: Tensor, num_freqs: int, include_input: bool = True) -> Tensor:
    """x: [..., C] -> [..., C * (2 * num_freqs + include_input)]: sin and cos of x * pi * 2^k, k < num_freqs."""
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)  # [F]
    angles = (x[..., None] * freqs).flatten(-2)  # [..., C * F]
    parts = [x] if include_input else []
    return torch.cat(parts + [angles.sin(), angles.cos()], dim=-1)


class TriplaneUpsampler(nn.Module):
    """Three planes of tokens -> three higher-resolution feature planes.

    planes: [B, 3, C_in, r, r] -> [B, 3, C_out, r * factor, r * factor]. Each x2 step is a 2x2
    transposed convolution and a GELU; a 3x3 convolution finishes. The three planes share weights.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int = 4, hidden: int | None = None):
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"TriplaneUpsampler factor must be a power of two; got {factor}.")
        hidden = hidden or out_channels
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(int(math.log2(factor))):
            layers += [nn.ConvTranspose2d(ch, hidden, kernel_size=2, stride=2), nn.GELU()]
            ch = hidden
        layers.append(nn.Conv2d(ch, out_channels, kernel_size=3, padding=1))
        self.net = nn.Sequential(*layers)
        self.factor = factor

    def forward(self, planes: Tensor) -> Tensor:
        b = planes.shape[0]
        x = rearrange(planes, "b p c h w -> (b p) c h w")  # [B*3, C_in, r, r]
        x = self.net(x)  # [B*3, C_out, R, R]
        return rearrange(x, "(b p) c h w -> b p c h w", b=b)


def sample_triplane(planes: Tensor, points: Tensor, reduce: str = "sum") -> Tensor:
    """Bilinear features of `points` on three planes.

    planes: [B, 3, C, R, R] (xy, xz, yz, as PLANE_AXES), points: [B, Q, 3] in [-1, 1] -> [B, Q, C]
    (sum over planes) or [B, Q, 3C] (reduce="concat"). Points outside the cube read the border.
    """
    if planes.dim() != 5 or planes.shape[1] != 3:
        raise ValueError(f"planes must be [B, 3, C, R, R]; got shape {list(planes.shape)}.")
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be [B, Q, 3]; got shape {list(points.shape)}.")
    b, _, c, r, _ = planes.shape
    uv = torch.stack([points[..., list(ax)] for ax in PLANE_AXES], dim=1)  # [B, 3, Q, 2]
    uv = rearrange(uv, "b p q t -> (b p) q 1 t")  # [B*3, Q, 1, 2]
    feats = F.grid_sample(
        rearrange(planes, "b p c h w -> (b p) c h w"), uv.to(planes.dtype),
        mode="bilinear", padding_mode="border", align_corners=False,
    )  # [B*3, C, Q, 1]
    feats = rearrange(feats[..., 0], "(b p) c q -> b q p c", b=b)  # [B, Q, 3, C]
    if reduce == "sum":
        return feats.sum(2)
    if reduce == "concat":
        return feats.flatten(2)
    raise ValueError(f"reduce must be 'sum' or 'concat'; got {reduce!r}.")


__all__ = ["PLANE_AXES", "fourier_features", "TriplaneUpsampler", "sample_triplane"]
