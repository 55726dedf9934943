"""Image files and transforms (Pillow): float tensors in [0, 1] at the API."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.io import atomic_write


# Images larger than this are refused before they are decoded (a PNG of a few KB can declare
# gigapixels); about an 8K x 8K photo.
MAX_IMAGE_PIXELS = 8192 * 8192
IMAGE_FORMATS = "PNG, JPEG, WebP, BMP, TIFF (8-bit, 16-bit or float in [0, 1])"


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file -> [3, H, W] float32 in [0, 1] (RGB; alpha and palettes are converted).

    16-bit images are scaled by 1/65535; float images (TIFF mode F) must hold values in [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {path}.")
    with open(path, "rb") as f:
        return decode_image(f, str(path))


def decode_image(data, name: str) -> Tensor:
    """A file object or bytes holding an image -> [3, H, W] float32 in [0, 1]; errors name `name`."""
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(data, (bytes, bytearray)):
        data = io.BytesIO(data)
    import warnings

    try:
        with warnings.catch_warnings():  # the pixel limit below is zoo's own; Pillow's warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(data)
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS or w < 1 or h < 1:
                raise ValueError(
                    f"{name} is {w}x{h} pixels; zoo reads images of 1 to {MAX_IMAGE_PIXELS} pixels "
                    f"(e.g. up to 8192x8192). Downscale it first."
                )
            arr = _pil_to_float(im, name)
    except Image.DecompressionBombError as e:  # Pillow refuses over 2x its own limit while opening
        raise ValueError(f"{name} declares too many pixels ({e}); zoo reads images of up to {MAX_IMAGE_PIXELS} "
                         f"pixels. Downscale it first.") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"Could not read {name} as an image ({e}); accepted: {IMAGE_FORMATS}.") from e
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _pil_to_float(im, name: str) -> np.ndarray:
    """A PIL image -> [H, W, 3] float32 in [0, 1], by mode: 8-bit modes through RGB, 16-bit integer
    modes scaled by 1/65535, float mode checked to lie in [0, 1] (never clipped silently)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(
                f"{name} is a 32-bit integer image with values in [{a.min():.0f}, {a.max():.0f}]; zoo reads "
                f"8-bit, 16-bit (0..65535) or float [0, 1] images."
            )
        a = a / 65535.0
    elif mode == "F":
        a = np.asarray(im).astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} is a float image holding NaN or infinite values; zoo reads float images in [0, 1].")
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(
                f"{name} is a float image with values in [{a.min():.4g}, {a.max():.4g}]; zoo reads float images "
                f"in [0, 1]. Rescale it first."
            )
    else:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    if a.ndim == 3:  # a multi-channel high-depth mode: keep the first three channels
        a = a[..., :3]
    else:
        a = np.repeat(a[..., None], 3, axis=-1)  # grayscale -> RGB
    return np.ascontiguousarray(a, dtype=np.float32)


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
    if nh * nw > MAX_IMAGE_PIXELS:  # an extreme aspect ratio (e.g. 1x65000) would be resized to gigapixels
        raise ValueError(
            f"A {h}x{w} image resized to cover {th}x{tw} would be {nh}x{nw} pixels (over {MAX_IMAGE_PIXELS}); "
            f"crop it to a less extreme aspect ratio first."
        )
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (nh - th) // 2, (nw - tw) // 2
    x = x[..., top : top + th, left : left + tw]
    return x[0] if squeeze else x
