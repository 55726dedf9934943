"""Fixed sinusoidal embeddings: of (fractional) timesteps, of 1D positions and of 2D grids, plus DiT's
timestep embedder (sinusoid -> MLP).

The timestep embedding and its MLP follow DiT (Peebles & Xie, arXiv 2212.09748,
github.com/facebookresearch/DiT, CC-BY-NC); the 2D sin-cos table follows MAE (He et al., arXiv
2111.06377) and MoCo v3 (Chen et al., arXiv 2104.02057), which differ only in which grid axis fills the
first half of the channels (`rows_first`). Each convention a family needs is an argument here, never a
second function; tables are built in `dtype` so that each family's numbers stay bit-exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0, scale: float = 1.0, cos_first: bool = True) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) scalars. t: [N] -> [N, dim] float32.

    Frequencies scale * max_period^(-i/half), i < half; cosines first as DiT (and FlexTok), sines first
    with cos_first=False. An odd dim gets one zero channel at the end.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)  # [half]
    if scale != 1.0:
        freqs = scale * freqs
    args = t[:, None].float() * freqs[None]  # [N, half]
    parts = [torch.cos(args), torch.sin(args)] if cos_first else [torch.sin(args), torch.cos(args)]
    emb = torch.cat(parts, dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Scalar -> sinusoidal features -> Linear, SiLU, Linear (DiT). t: [N] -> [N, hidden].

    max_period and scale shape the frequencies as in `timestep_embedding` (DiT: 10000 and 1; FlexTok: 256 and
    1000 / its largest timestep)."""

    def __init__(self, hidden: int, frequency_dim: int = 256, max_period: float = 10000.0, scale: float = 1.0):
        super().__init__()
        self.frequency_dim, self.max_period, self.scale = frequency_dim, max_period, scale
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        freq = timestep_embedding(t, self.frequency_dim, self.max_period, self.scale)
        return self.mlp(freq.to(self.mlp[0].weight.dtype))


def sincos_1d(dim: int, positions: Tensor, temperature: float = 10000.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """Fixed 1D sin-cos table, sines first (MAE), computed in `dtype`. positions: [M] (any shape, flattened) -> [M, dim]."""
    if dim % 2:
        raise ValueError(f"sin-cos embeddings need an even width; got {dim}.")
    omega = torch.arange(dim // 2, dtype=dtype) / (dim / 2.0)
    omega = 1.0 / temperature**omega  # [dim/2]
    out = positions.reshape(-1).to(dtype)[:, None] * omega[None]  # [M, dim/2]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(
    dim: int,
    grid_size: int | tuple[int, int],
    rows_first: bool = False,
    temperature: float = 10000.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Fixed 2D sin-cos table over an h x w grid, row-major. grid_size: g or (h, w) -> [h*w, dim] float32.

    Channels [sin, cos] of one axis, then [sin, cos] of the other, dim/4 each: the column index first as
    MAE (rows_first=False), the row index first as MoCo v3 and FlexTok (rows_first=True).
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos position embeddings need dim divisible by 4; got {dim}.")
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")  # [h, w] each
    first, second = (rows, cols) if rows_first else (cols, rows)
    emb = torch.cat([sincos_1d(dim // 2, first, temperature, dtype), sincos_1d(dim // 2, second, temperature, dtype)], dim=1)
    return emb.float()  # [h*w, dim]
