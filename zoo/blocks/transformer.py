"""Pre-LN transformer blocks (FlexTok, VAT, One-D-Piece), their adaLN-modulated variant (FlexTok) and
adaLN's `modulate` (FlexTok, Selftok).

Written for FlexTok (arXiv 2502.13967, apple/ml-flextok, Apple sample-code license) and kept
generic: every choice that differs between codebases (q/k/v layout, attention scale, QK-norm, LayerNorm
affinity, MLP kind, the order of the adaLN chunks, per-segment modulation) is a plain constructor
argument. The ViT / CLIP residual block (Dosovitskiy et al., arXiv 2010.11929; Radford et al., arXiv
2103.00020) is the same block with a packed q/k/v, a GELU MLP and affine LayerNorms. The adaLN-zero idea
is DiT's (Peebles & Xie, arXiv 2212.09748); SwiGLU is Shazeer's (arXiv 2002.05202).
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from zoo.blocks.attention import Attention
from zoo.blocks.mlp import Mlp, SwiGLU
from zoo.blocks.norm import LayerNorm

__all__ = ["DIT_ADALN_ORDER", "AdaLNTransformerBlock", "TransformerBlock", "expand_segments", "modulate"]

# DiT's adaLN chunk order; FlexTok uses ("gate_msa", "gate_mlp", "shift_msa", "scale_msa", "shift_mlp", "scale_mlp").
DIT_ADALN_ORDER = ("shift_msa", "scale_msa", "gate_msa", "shift_mlp", "scale_mlp", "gate_mlp")


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x * (1 + scale) + shift; shift/scale already broadcast to x (e.g. [B, 1, D] or [1, N, D])."""
    return x * (1.0 + scale) + shift


class TransformerBlock(nn.Module):
    """Pre-LN block: x + attn(LN x); x + mlp(LN x). x: [B, N, D], mask as Attention's -> [B, N, D].

    FlexTok / VAT (the defaults): split q/k/v with QK-norm, non-affine fp32 LayerNorms, gated (SwiGLU) MLP
    of width `mlp_hidden`, no biases. ViT / CLIP (one_d_piece): attn_layout="fused", mlp="gelu",
    qk_norm=False, norm_affine=True, bias=True. `bias` covers every Linear of the block.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        qk_norm: bool = True,
        attn_scale: float | None = None,
        norm_affine: bool = False,
        bias: bool = False,
        attn_layout: str = "split",
        mlp: str = "swiglu",
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        if mlp not in ("swiglu", "gelu"):
            raise ValueError(f"TransformerBlock mlp must be 'swiglu' or 'gelu'; got {mlp!r}.")
        if mlp == "gelu" and not bias:
            raise ValueError("TransformerBlock's GELU MLP (ViT / CLIP) always has biases; pass bias=True.")
        self.dim = dim
        self.norm1 = LayerNorm(dim, eps=norm_eps, affine=norm_affine)
        self.attn = Attention(
            dim, num_heads, layout=attn_layout, qkv_bias=bias, proj_bias=bias, qk_norm=qk_norm, scale=attn_scale
        )
        self.norm2 = LayerNorm(dim, eps=norm_eps, affine=norm_affine)
        self.mlp = SwiGLU(dim, mlp_hidden, bias=bias) if mlp == "swiglu" else Mlp(dim, mlp_hidden)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


def expand_segments(mod: Tensor, segments: Sequence[int] | None) -> Tensor:
    """Per-segment modulation -> per-token modulation.

    mod: [B, E*M] with E = len(segments) (or E = 1 when segments is None) -> [B, N, M],
    N = sum(segments); segment e's M values are repeated over its tokens.
    """
    if segments is None:
        return mod[:, None, :]  # [B, 1, M]: broadcasts over every token
    mod = rearrange(mod, "b (e m) -> b e m", e=len(segments))  # [B, E, M]
    reps = torch.as_tensor(list(segments), device=mod.device)
    return mod.repeat_interleave(reps, dim=1)  # [B, N, M]


class AdaLNTransformerBlock(TransformerBlock):
    """Pre-LN block with adaLN-zero modulation from a conditioning vector.

    `adaLN_modulation` = SiLU -> Linear(D, expansion * 6 * D). With expansion E > 1 the
    sequence is split into E consecutive segments (`segments=` lengths in forward), each with
    its own shift/scale/gate. `chunk_order` names the six D-wide chunks in the order the
    Linear emits them (DiT: shift, scale, gate; FlexTok: gates first).
    """

    def __init__(self, *args, expansion: int = 1, chunk_order: Sequence[str] = DIT_ADALN_ORDER, **kwargs):
        super().__init__(*args, **kwargs)
        if sorted(chunk_order) != sorted(DIT_ADALN_ORDER):
            raise ValueError(f"chunk_order must be a permutation of {DIT_ADALN_ORDER}; got {tuple(chunk_order)}.")
        self.expansion = expansion
        self.chunk_order = tuple(chunk_order)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(self.dim, expansion * 6 * self.dim))

    def forward(self, x: Tensor, cond: Tensor, segments: Sequence[int] | None = None, mask: Tensor | None = None) -> Tensor:
        """x: [B, N, D], cond: [B, D], segments: E lengths summing to N (None when E = 1)."""
        if (segments is None) != (self.expansion == 1) or (segments is not None and len(segments) != self.expansion):
            raise ValueError(f"This block has adaLN expansion {self.expansion}; got segments={segments}.")
        mod = expand_segments(self.adaLN_modulation(cond), segments)  # [B, N|1, 6D]
        c = dict(zip(self.chunk_order, mod.chunk(6, dim=-1)))
        x = x + c["gate_msa"] * self.attn(modulate(self.norm1(x), c["shift_msa"], c["scale_msa"]), mask)
        return x + c["gate_mlp"] * self.mlp(modulate(self.norm2(x), c["shift_mlp"], c["scale_mlp"]))
