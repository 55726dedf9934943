"""Finite Scalar Quantization (FSQ).

Paper: Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple", arXiv:2309.15505.
Reference implementations read (not copied): google-research/google-research `fsq` (Apache-2.0),
lucidrains/vector-quantize-pytorch `finite_scalar_quantization.py` (MIT), apple/ml-flextok
`flextok/regularizers/quantize_fsq.py` (Apple sample-code license; same bounding and id layout).

Why ours and not `vector_quantize_pytorch.FSQ`: it returns int32 ids and keeps extra options
(num_codebooks, symmetry, noise dropout) whose defaults we would have to pin; this file is the
paper's exact numerics in fp32 with int64 ids and the zoo Quantizer contract.

Per channel with L levels: half_l = (L - 1) * (1 + eps) / 2, offset = 0.5 if L is even else 0,
shift = atanh(offset / half_l); bounded = tanh(z + shift) * half_l - offset; rounded (straight-through),
divided by L // 2 -> codes in [-1, 1]. Ids: digit_i = code_i * (L_i // 2) + L_i // 2 in [0, L_i),
id = sum_i digit_i * basis_i with basis = cumprod([1] + levels[:-1]) (the FIRST channel is the least
significant digit). Example levels [8, 5]: codes (0.25, -0.5) -> digits (5, 1) -> id 5 + 1 * 8 = 13.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from zoo.quantizers.base import Quantizer, QuantizerOutput
from zoo.quantizers.vq import usage_metrics

__all__ = ["FSQ"]


class FSQ(Quantizer):
    """z: [..., dim] -> QuantizerOutput(quantized [..., dim], ids [...] int64). No losses, no state.

    levels: levels per channel, e.g. [8, 8, 8, 5, 5, 5] (64,000 codes). dim: input channels;
    project_in / project_out are nn.Linear(dim, len(levels)) / back when dim != len(levels), else
    nn.Identity. eps: the (1 + eps) widening of the bound that keeps the extreme levels reachable.
    The bounding and rounding run in fp32; the output has the input's dtype.
    """

    def __init__(self, levels: Sequence[int], dim: int | None = None, *, eps: float = 1e-3):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2; got {levels}.")
        self.levels = levels
        self.codebook_dim = len(levels)
        self.dim = self.codebook_dim if dim is None else dim
        self.eps = eps
        self.codebook_size = math.prod(levels)
        basis = [1]
        for v in levels[:-1]:
            basis.append(basis[-1] * v)
        # Non-persistent: derived from `levels`, so they never appear in a state dict.
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.long), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.project_in = nn.Linear(self.dim, self.codebook_dim) if self.dim != self.codebook_dim else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, self.dim) if self.dim != self.codebook_dim else nn.Identity()

    def extra_repr(self) -> str:
        return f"levels={self.levels}, dim={self.dim}, codebook_size={self.codebook_size}"

    def bound(self, z: Tensor) -> Tensor:
        """[..., C] -> [..., C] in (-L//2 - 0.5ish, L//2); rounding it gives the integer levels."""
        levels = self._levels.to(torch.float32)
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def quantize(self, z: Tensor) -> Tensor:
        """Pre-quantization channels [..., C] (fp32) -> codes in [-1, 1], straight-through rounding."""
        b = self.bound(z)
        r = torch.round(b)
        if b.requires_grad:
            r = b + (r - b).detach()
        return r / (self._levels // 2).to(torch.float32)

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """codes [..., C] on the grid -> ids [...] int64."""
        if codes.shape[-1] != self.codebook_dim:
            raise ValueError(f"FSQ codes end in {self.codebook_dim} channels; got shape {list(codes.shape)}.")
        half = self._levels // 2
        digits = torch.round(codes.float() * half + half).long()  # [..., C]
        return (digits * self._basis).sum(-1)

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """ids [...] -> codes [..., C] in [-1, 1] (fp32)."""
        self.check_ids(ids)
        digits = (ids.long().unsqueeze(-1) // self._basis) % self._levels  # [..., C]
        half = self._levels // 2
        return (digits - half).to(torch.float32) / half.to(torch.float32)

    def ids_to_quantized(self, ids: Tensor) -> Tensor:
        """ids [...] -> [..., dim] (codes through project_out)."""
        codes = self.ids_to_codes(ids)
        if not isinstance(self.project_out, nn.Identity):
            codes = codes.to(self.project_out.weight.dtype)
        return self.project_out(codes)

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ expects channel-last input [..., {self.dim}]; got shape {list(z.shape)}.")
        x = self.project_in(z)  # [..., C]
        codes = self.quantize(x.float())  # [..., C] fp32
        ids = self.codes_to_ids(codes.detach())
        q = codes if isinstance(self.project_out, nn.Identity) else codes.to(self.project_out.weight.dtype)
        quantized = self.project_out(q).to(z.dtype)
        return QuantizerOutput(quantized=quantized, ids=ids, metrics=usage_metrics(ids, self.codebook_size))
