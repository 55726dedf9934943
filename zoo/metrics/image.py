"""Image metrics on [B, 3, H, W] tensors in [0, 1]."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB: [B, C, H, W] x2 -> [B]."""
    if x.shape != y.shape:
        raise ValueError(f"psnr needs equal shapes; got {list(x.shape)} and {list(y.shape)}.")
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp(min=1e-12))
