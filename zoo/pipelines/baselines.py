"""Classical codecs that `zoo eval` puts beside the tokenizers at a similar size, one per modality.

Images: JPEG and WebP (Pillow) at several qualities, and raw 8-bit thumbnails (1x1 .. 16x16, bicubic
upsampling). Speech: codec2 (Debian package `codec2`, LGPL-2.1; `apt-get install -y codec2`), a
parametric speech codec at 8 kHz whose modes 700C and 1200 bracket the tiny audio models' rates.
Shapes: a binary occupancy voxel grid of at most the tokens' bits, trilinearly upsampled.
Each function takes and returns tensors; the scoring is evaluate.py's.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

JPEG_QUALITIES = (5, 10, 20, 35, 50, 75, 90)
THUMBNAIL_SIDES = (1, 2, 4, 8, 16)  # raw 8-bit RGB thumbnails: 24 * side^2 bits
CODEC2_MODES = {"700C": 700, "1200": 1200}  # mode -> bits per second
CODEC2_RATE = 8000


def thumbnail(x: Tensor, side: int) -> Tensor:
    """[B, 3, H, W] -> a side x side 8-bit thumbnail (area average), upsampled back bicubically."""
    small = F.interpolate(x, size=(side, side), mode="area").mul(255).round().div(255)
    return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def pillow_codec(x: Tensor, fmt: str, quality: int) -> tuple[int, Tensor]:
    """Compress an image [1, 3, H, W] with Pillow (JPEG or WEBP) -> (bytes, decoded image)."""
    import numpy as np
    from PIL import Image

    from zoo.media.image import to_pil

    buf = io.BytesIO()
    to_pil(x[0]).save(buf, format=fmt, quality=quality)
    n = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return n, torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255


def codec2_available() -> bool:
    return shutil.which("c2enc") is not None and shutil.which("c2dec") is not None


def codec2(wav: Tensor, sample_rate: int, mode: str, delay: int = 0) -> Tensor:
    """wav [T] -> codec2 at 8 kHz (16-bit PCM) -> back to `sample_rate`, [T], advanced by `delay` samples
    (the codec's algorithmic delay, see codec2_delay)."""
    import numpy as np

    from zoo.signal import resample

    pcm = (resample(wav[None], sample_rate, CODEC2_RATE)[0].clamp(-1, 1).numpy() * 32767).round().astype("<i2")
    with tempfile.TemporaryDirectory() as d:
        raw, bit, out = Path(d) / "in.raw", Path(d) / "c.bit", Path(d) / "out.raw"
        raw.write_bytes(pcm.tobytes())
        subprocess.run(["c2enc", mode, str(raw), str(bit)], check=True, capture_output=True)
        subprocess.run(["c2dec", mode, str(bit), str(out)], check=True, capture_output=True)
        y8 = torch.from_numpy(np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0)
    y = resample(y8[None], CODEC2_RATE, sample_rate)[0][delay:]
    n = wav.shape[-1]
    return F.pad(y, (0, max(0, n - y.shape[-1])))[:n]


def codec2_delay(wav: Tensor, sample_rate: int, mode: str, max_lag_s: float = 0.1) -> int:
    """The lag (samples, up to max_lag_s) that best aligns codec2's output with its input, by
    cross-correlation over a clip (the longest one: short clips give no clear peak)."""
    max_lag = int(max_lag_s * sample_rate)
    y = codec2(wav, sample_rate, mode)
    n = wav.shape[-1] - max_lag
    if n <= 0:
        return 0
    corr = torch.stack([(wav[:n] * y[lag : lag + n]).sum() for lag in range(max_lag)])
    return int(corr.argmax())


def voxels(mesh, bits: int, resolution: int) -> tuple[Tensor, int]:
    """Occupancy of `mesh` on a k^3 binary grid (k^3 at most ~bits) upsampled trilinearly to
    [R, R, R] over [-1, 1]^3 -> (grid, k)."""
    from zoo.media import mesh as M

    k = max(2, math.ceil(bits ** (1 / 3) - 1e-9))
    k = k - 1 if k**3 > bits * 1.02 else k  # stay within the budget (2% slack: 512 bits vs 504)
    centers = (torch.arange(k) + 0.5) / k * 2 - 1
    x, y, z = torch.meshgrid(centers, centers, centers, indexing="ij")
    occ = M.occupancy(mesh, torch.stack([x, y, z], -1).reshape(-1, 3)).float().reshape(1, 1, k, k, k)
    # cell centres -> the decode grid (align_corners=False maps cell centres correctly)
    up = F.interpolate(occ, size=(resolution,) * 3, mode="trilinear", align_corners=False)[0, 0]
    return up, k
