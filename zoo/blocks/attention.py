"""Multi-head self-attention on PyTorch SDPA, one class for every layout the zoo's families use.

What differs between codebases is an argument: one packed q/k/v projection (ViT / CLIP, whose row order
is `torch.nn.MultiheadAttention.in_proj_weight`: all q rows, then k, then v) or three separate ones
(FlexTok, Whisper), biases (Whisper's k projection has none), QK-LayerNorm over the head width
(FlexTok, after Dehghani et al., arXiv 2302.05442) and the softmax scale. `layout` also picks the
submodule names, so that checkpoints saved in our format before the families shared this block load
unchanged; upstream names are mapped onto these in each family's `remap_state_dict`.

Attention patterns beyond self-attention (Selftok's joint MMDiT streams, its query stream that attends
to [patches, queries], the 1x1-conv attention of Vocos' prelude) call the parts: `Attention.qkv_heads`,
`split_heads`, `attend` (the one SDPA call) and `Attention.out`.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.blocks.norm import LayerNorm

# layout -> names of the q, k, v and output projections ("fused": one `qkv` projection).
LAYOUTS = {
    "fused": ("qkv", "proj"),  # ViT / CLIP (one_d_piece)
    "split": ("wq", "wk", "wv", "proj"),  # FlexTok, VAT
    "whisper": ("q_proj", "k_proj", "v_proj", "out_proj"),  # Whisper (xy_tokenizer)
}


def split_heads(x: Tensor, heads: int, parts: int = 1) -> tuple[Tensor, ...]:
    """x: [B, N, parts * H * Dh] (packed projections: all rows of part 0, then part 1 ...) -> parts x [B, H, N, Dh]."""
    return tuple(rearrange(x, "b n (p h d) -> p b h n d", p=parts, h=heads).unbind(0))


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, scale: float | None = None) -> Tensor:
    """Scaled dot-product attention with the heads merged. q: [B, H, Nq, Dh], k/v: [B, H, Nk, Dh];
    mask broadcastable to [B, H, Nq, Nk] (bool, True = may attend, or an additive bias) -> [B, Nq, H * Dh]."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)  # [B, H, Nq, Dh]
    return rearrange(out, "b h n d -> b n (h d)")


class Attention(nn.Module):
    """Multi-head self-attention. x: [B, N, D]; mask broadcastable to [B, H, N, N], bool (True = may attend)
    or an additive float bias -> [B, N, D].

    qkv_bias / proj_bias: biases of the input and output projections; k_bias: of the k projection alone
    (None: qkv_bias). qk_norm: fp32 LayerNorm (no affine) of q and k over the head width. scale: softmax
    scale (None: 1/sqrt(head_dim)). out_proj=False leaves out the output projection (a stream that only
    supplies keys and values, as the last context stream of an MMDiT).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        layout: str = "fused",
        qkv_bias: bool = True,
        proj_bias: bool = True,
        k_bias: bool | None = None,
        qk_norm: bool = False,
        scale: float | None = None,
        out_proj: bool = True,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention width {dim} must be divisible by the number of heads {num_heads}.")
        if layout not in LAYOUTS:
            raise ValueError(f"Attention layout must be one of {sorted(LAYOUTS)}; got {layout!r}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = scale
        self.names = LAYOUTS[layout]
        if layout == "fused":
            if k_bias is not None and k_bias != qkv_bias:
                raise ValueError("A fused q/k/v projection has one bias for q, k and v; use layout='split' for k_bias.")
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        else:
            q, k, v, _ = self.names
            setattr(self, q, nn.Linear(dim, dim, bias=qkv_bias))
            setattr(self, k, nn.Linear(dim, dim, bias=qkv_bias if k_bias is None else k_bias))
            setattr(self, v, nn.Linear(dim, dim, bias=qkv_bias))
        if out_proj:
            setattr(self, self.names[-1], nn.Linear(dim, dim, bias=proj_bias))
        if qk_norm:
            self.q_norm = LayerNorm(self.head_dim)
            self.k_norm = LayerNorm(self.head_dim)
        else:
            self.q_norm, self.k_norm = nn.Identity(), nn.Identity()

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [B, N, D] -> q, k, v: [B, H, N, Dh] each, q and k normalised when qk_norm."""
        if len(self.names) == 2:
            q, k, v = split_heads(self.qkv(x), self.num_heads, parts=3)
        else:
            q, k, v = (split_heads(getattr(self, name)(x), self.num_heads)[0] for name in self.names[:3])
        return self.q_norm(q), self.k_norm(k), v

    def out(self, x: Tensor) -> Tensor:
        """The output projection: attended values [B, N, D] -> [B, N, D]."""
        return getattr(self, self.names[-1])(x)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.out(attend(*self.qkv_heads(x), mask=mask, scale=self.scale))
