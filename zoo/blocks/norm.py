"""LayerNorm computed in fp32 whatever the input dtype, with optional affine parameters and bias.

Used by the attention's QK-norm (zoo.blocks.attention) and the pre-LN transformer blocks
(zoo.blocks.transformer) of FlexTok and VAT; in fp32 as FlexTok (apple/ml-flextok) computes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
