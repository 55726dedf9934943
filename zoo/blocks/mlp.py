"""Transformer feed-forward layers: the two-layer MLP (ViT, CLIP, DiT) and the gated SwiGLU MLP (FlexTok, VAT).

Mlp follows ViT (Dosovitskiy et al., arXiv 2010.11929) with the activation an argument: exact GELU
for ViT / CLIP, the tanh approximation for DiT (Peebles & Xie, arXiv 2212.09748). SwiGLU is Shazeer's
(arXiv 2002.05202). Parameter names (`fc1`, `fc2`, `fc3`) are the timm / FlexTok ones, which our
checkpoints use.
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn


class Mlp(nn.Module):
    """Linear -> activation -> Linear. x: [..., dim] -> [..., out_dim or dim].

    act: a module factory, e.g. nn.GELU, or functools.partial(nn.GELU, approximate="tanh") for DiT.
    """

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None, act: Callable[[], nn.Module] = nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    """fc2(silu(fc1 x) * fc3 x). x: [..., D] -> [..., D]"""

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.fc3 = nn.Linear(dim, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.silu(self.fc1(x)) * self.fc3(x))
