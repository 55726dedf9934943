"""Transformer pieces shared by the token-resampling families: attention on PyTorch SDPA,
a gated (SwiGLU) MLP, pre-LN blocks and adaLN-modulated blocks.

Written for FlexTok (arXiv 2502.13967, apple/ml-flextok, Apple sample-code license) and kept
generic: every choice that differs between codebases (attention scale, QK-norm, LayerNorm
affinity, the order of the adaLN chunks, per-segment modulation) is a plain constructor argument.
The adaLN-zero idea is DiT's (Peebles & Xie, arXiv 2212.09748); SwiGLU is Shazeer's (arXiv 2002.05202).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# DiT's adaLN chunk order; FlexTok uses ("gate_msa", "gate_mlp", "shift_msa", "scale_msa", "shift_mlp", "scale_mlp").
DIT_ADALN_ORDER = ("shift_msa", "scale_msa", "gate_msa", "shift_mlp", "scale_mlp", "gate_mlp")


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, computed in fp32 and cast back (no affine by default)."""

    def __init__(self, dim: int, eps: float = 1e-5, affine: bool = False, bias: bool = True):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), (self.dim,), w, b, self.eps).to(x.dtype)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1.0 + scale) + shift


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections, optional QK-LayerNorm over the
    head dimension, and an explicit softmax scale (None = 1/sqrt(head_dim)). Runs on SDPA.

    x: [B, N, D], mask: bool [N, N] or [B, 1|H, N, N] (True = may attend) -> [B, N, D]
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = False,
        proj_bias: bool = False,
        qk_norm: bool = True,
        scale: float | None = None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention dim {dim} is not divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = scale
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.q_norm = LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = LayerNorm(self.head_dim) if qk_norm else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.wq(x), "b n (h d) -> b h n d", h=self.num_heads)  # [B, H, N, Dh]
        k = rearrange(self.wk(x), "b n (h d) -> b h n d", h=self.num_heads)
        v = rearrange(self.wv(x), "b n (h d) -> b h n d", h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class SwiGLU(nn.Module):
    """fc2(silu(fc1 x) * fc3 x). x: [..., D] -> [..., D]"""

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.fc3 = nn.Linear(dim, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.silu(self.fc1(x)) * self.fc3(x))


class TransformerBlock(nn.Module):
    """Pre-LN block: x + attn(LN x); x + mlp(LN x). Gated (SwiGLU) MLP of width `mlp_hidden`."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        qk_norm: bool = True,
        attn_scale: float | None = None,
        norm_affine: bool = False,
        bias: bool = False,
    ):
        super().__init__()
        self.dim = dim
        self.norm1 = LayerNorm(dim, affine=norm_affine)
        self.attn = Attention(dim, num_heads, qkv_bias=bias, proj_bias=bias, qk_norm=qk_norm, scale=attn_scale)
        self.norm2 = LayerNorm(dim, affine=norm_affine)
        self.mlp = SwiGLU(dim, mlp_hidden, bias=bias)

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


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0, scale: float = 1.0, cos_first: bool = False) -> Tensor:
    """Sinusoidal embedding of (fractional) timesteps. t: [B] -> [B, dim].

    Frequencies scale * max_period^(-i/half), i < half; DiT puts cos first, as FlexTok does.
    """
    half = dim // 2
    freqs = scale * torch.exp(-torch.log(torch.tensor(float(max_period))) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs.to(t.device)[None]  # [B, half]
    parts = [torch.cos(args), torch.sin(args)] if cos_first else [torch.sin(args), torch.cos(args)]
    emb = torch.cat(parts, dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def sincos_2d_posemb(h: int, w: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """MoCo-v3 2D sin-cos table -> [dim, h, w]: channels [sin(a), cos(a), sin(b), cos(b)], dim/4 each,
    where (a, b) enumerate a (w, h) 'ij' meshgrid laid out row-major over (h, w), as FlexTok and
    MoCo-v3 build it (for square grids a = row index, b = column index)."""
    if dim % 4:
        raise ValueError(f"2D sin-cos position embeddings need dim divisible by 4; got {dim}.")
    gw, gh = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    a = gw.reshape(-1)[:, None] * omega[None]  # [W*H, dim/4]
    b = gh.reshape(-1)[:, None] * omega[None]
    emb = torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], dim=1)  # [W*H, dim]
    return rearrange(emb, "(h w) d -> d h w", h=h, w=w)
