"""Image files and transforms (Pillow): float tensors in [0, 1] at the API."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.api import atomic_write


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file -> [3, H, W] float32 in [0, 1] (RGB; alpha and palettes are converted)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {path}.")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"Could not read {path} as an image ({e}); accepted: PNG, JPEG, WebP, BMP, TIFF.") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def to_pil(image: Tensor):
    from PIL import Image

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"Expected an image [3, H, W]; got shape {list(image.shape)}.")
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def save_image(path: str | os.PathLike, image: Tensor, **save_kwargs) -> Path:
    """Write [3, H, W] in [0, 1]; the format follows the suffix."""
    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"save_image writes .png, .jpg, .webp or .bmp; got {path.suffix!r}.")
    pil = to_pil(image)
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt, **save_kwargs))


def resize_center_crop(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize the short side to `size` (antialiased bicubic) and center-crop: [.., 3, H, W] -> [.., 3, s, s]."""
    th, tw = (size, size) if isinstance(size, int) else size
    squeeze = image.dim() == 3
    x = image[None] if squeeze else image
    h, w = x.shape[-2:]
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (nh - th) // 2, (nw - tw) // 2
    x = x[..., top : top + th, left : left + tw]
    return x[0] if squeeze else x
