"""Pre-norm ViT pieces with a packed q/k/v projection (ViT / CLIP layout): multi-head self-attention (PyTorch SDPA), MLP, and the block that joins them.

The layout follows the ViT / CLIP residual block (Dosovitskiy et al., arXiv 2010.11929; Radford et al.,
arXiv 2103.00020): `x + attn(norm1(x))`, then `x + mlp(norm2(x))`. The packed `qkv` projection has
the same row order as `torch.nn.MultiheadAttention.in_proj_weight` (all q rows, then k, then v), so
checkpoints of models built on `nn.MultiheadAttention` convert by renaming alone.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention over `[B, L, D]` with one packed q/k/v projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention width {dim} must be divisible by the number of heads {num_heads}.")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x: [B, L, D]; attn_mask: bool, broadcastable to [B, H, L, L], True = may attend."""
        qkv = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)  # [B, H, L, Dh]
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class Mlp(nn.Module):
    """Linear -> activation -> Linear."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int | None = None, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = act()
        self.fc2 = nn.Linear(hidden_dim, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-5,
        act: type[nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))
