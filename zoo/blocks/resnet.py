"""The pre-activation conv residual block of taming / LDM: GroupNorm -> SiLU -> conv3 -> GroupNorm -> SiLU ->
(dropout) -> conv3, plus a shortcut; in 1D (Vocos's prelude) or 2D (WeTok, MaskGIT-VQGAN).

Taming Transformers (Esser et al., arXiv 2012.09841, github.com/CompVis/taming-transformers, MIT). What
the users' released weights differ in is an argument: conv biases, dropout, and where the 1x1 shortcut
goes when the width changes. Module names (`norm1`, `conv1`, `norm2`, `conv2`, `nin_shortcut`) are
taming's, which all three checkpoints use.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


def check_group_norm_widths(channels: int, channel_mult: Sequence[int], num_groups: int, widths: str) -> None:
    """Raise unless every level width `channels * m` of a conv stack splits into `num_groups` GroupNorm groups
    (a config check: nn.GroupNorm would only fail when the model is built). widths: what the config calls
    those widths, for the message."""
    for m in channel_mult:
        if (channels * m) % num_groups:
            raise ValueError(f"{widths} must be a multiple of {num_groups} (the GroupNorm groups); got {channels} x {m}.")


class ResBlock(nn.Module):
    """x: [B, in_ch, L] (dims=1) or [B, in_ch, H, W] (dims=2) -> [B, out_ch, ...].

    shortcut: "input" (taming, WeTok): the residual is x, through a 1x1 conv in -> out when the widths
    differ. "output" (MaskGIT-VQGAN's quirk, which its weights were trained with): when the widths differ
    the block returns h + conv1x1(h) (out -> out) and x is not carried over.
    bias: conv biases. eps / num_groups: of both GroupNorms.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None = None,
        dims: int = 2,
        bias: bool = False,
        dropout: float = 0.0,
        num_groups: int = 32,
        eps: float = 1e-6,
        shortcut: str = "input",
    ):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"ResBlock is 1D or 2D; got dims={dims}.")
        if shortcut not in ("input", "output"):
            raise ValueError(f"ResBlock shortcut must be 'input' or 'output'; got {shortcut!r}.")
        out_ch = out_ch or in_ch
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.shortcut = shortcut
        self.norm1 = nn.GroupNorm(num_groups, in_ch, eps=eps)
        self.conv1 = conv(in_ch, out_ch, 3, padding=1, bias=bias)
        self.norm2 = nn.GroupNorm(num_groups, out_ch, eps=eps)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = conv(out_ch, out_ch, 3, padding=1, bias=bias)
        nin = in_ch if shortcut == "input" else out_ch
        self.nin_shortcut = conv(nin, out_ch, 1, bias=bias) if in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.nin_shortcut is None:
            return h + x
        return h + self.nin_shortcut(x if self.shortcut == "input" else h)
