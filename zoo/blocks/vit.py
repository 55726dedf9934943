"""Pre-norm ViT / CLIP residual block (packed q/k/v attention, GELU MLP); one_d_piece is its only user so far, kept apart from zoo.blocks.transformer (SwiGLU, fp32 LayerNorm) for its nn.LayerNorm / packed-qkv layout.

The layout follows the ViT / CLIP residual block (Dosovitskiy et al., arXiv 2010.11929; Radford et al.,
arXiv 2103.00020): `x + attn(norm1(x))`, then `x + mlp(norm2(x))`. The packed `qkv` projection
(zoo.blocks.attention, layout "fused") has the row order of `torch.nn.MultiheadAttention.in_proj_weight`,
so checkpoints of models built on `nn.MultiheadAttention` convert by renaming alone.
"""

from __future__ import annotations

from torch import Tensor, nn

from zoo.blocks.attention import Attention
from zoo.blocks.mlp import Mlp


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
        self.attn = Attention(dim, num_heads, layout="fused", qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x: [B, L, D]; attn_mask: bool, broadcastable to [B, H, L, L], True = may attend -> [B, L, D]."""
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))
