"""DiT-style conditioning pieces: sinusoidal timestep embedder, sin-cos position tables, adaLN
modulation and the GELU-tanh MLP.

The sinusoidal timestep embedding and its MLP follow DiT (Peebles & Xie, arXiv 2212.09748,
github.com/facebookresearch/DiT, CC-BY-NC) and the fixed 2D sin-cos position table follows MAE
(He et al., arXiv 2111.06377). Written here with plain constructor arguments so that any family can
use them; parameter names (`mlp.0`, `mlp.2`, `fc1`, `fc2`) match the common upstream layout so that
converters rename little.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) scalars, cosines first (DiT convention).

    t: [N] -> [N, dim] float32.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]  # [N, half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Scalar -> sinusoidal features -> Linear, SiLU, Linear. t: [N] -> [N, hidden]."""

    def __init__(self, hidden: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        freq = timestep_embedding(t, self.frequency_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(freq)


class Mlp(nn.Module):
    """Linear -> GELU (tanh approximation by default) -> Linear."""

    def __init__(self, dim: int, hidden: int, approximate: str = "tanh"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x * (1 + scale) + shift; shift/scale already broadcast to x (e.g. [B, 1, D] or [1, N, D])."""
    return x * (1 + scale) + shift


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """Fixed 1D sin-cos table (sines first, MAE convention), computed in float64. positions: [M] -> [M, dim]."""
    if dim % 2:
        raise ValueError(f"sin-cos embeddings need an even width; got {dim}.")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # [dim/2]
    out = positions.reshape(-1).double()[:, None] * omega[None]  # [M, dim/2]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(dim: int, grid_size: int) -> Tensor:
    """Fixed 2D sin-cos table over a grid_size x grid_size grid, row-major. -> [grid_size**2, dim] float32."""
    coords = torch.arange(grid_size, dtype=torch.float64)
    grid_w, grid_h = torch.meshgrid(coords, coords, indexing="xy")  # width first, as MAE
    emb_h = sincos_1d(dim // 2, grid_w)  # MAE encodes the first grid (w) with the first half
    emb_w = sincos_1d(dim // 2, grid_h)
    return torch.cat([emb_h, emb_w], dim=1).float()
