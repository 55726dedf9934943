"""Write downscaled copies of the real photos the tiny image recipes train and evaluate on.

Decoding a 2560x1600 JPEG and resizing it takes ~0.4 s on one CPU thread, longer than a training
step of a tiny model; the recipes therefore read PNG copies whose short side is already the recipe's
`resize_to` (so `crop_image`'s resize is a no-op) and crop 64x64 patches from those.

Split (fixed; written in the recipes that use it):
  train/     the 12 Debian mate-backgrounds nature photos (/usr/share/backgrounds/mate/nature/*.jpg,
             GPL-2+; `apt-get install -y mate-backgrounds`)
  heldout/   four scikit-image photos never trained on: astronaut, coffee, chelsea, rocket

    python training/prepare_photos.py [--out runs/data/photos_160] [--short-side 160]

Resizing: antialiased bicubic (torch), clamped to [0, 1], saved as 8-bit PNG (lossless from here on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
HELDOUT = ("astronaut", "coffee", "chelsea", "rocket")


def resize_short_side(img: torch.Tensor, short: int) -> torch.Tensor:
    """[3, H, W] in [0, 1] -> [3, h, w] with min(h, w) == short (aspect kept)."""
    h, w = img.shape[-2:]
    s = short / min(h, w)
    size = (max(short, round(h * s)), max(short, round(w * s)))
    return F.interpolate(img[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)


def heldout_photos() -> dict[str, torch.Tensor]:
    """The scikit-image held-out photos as [3, H, W] floats in [0, 1]."""
    from skimage import data

    out = {}
    for name in HELDOUT:
        arr = getattr(data, name)()  # [H, W, 3] uint8
        out[name] = torch.from_numpy(arr[..., :3].copy()).permute(2, 0, 1).float() / 255
    return out


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/data/photos_160", help="output folder (train/ and heldout/ inside)")
    ap.add_argument("--short-side", type=int, default=160)
    args = ap.parse_args(argv)
    from zoo.media import save_image
    from zoo.media.image import load_image

    train = sorted(MATE_NATURE.glob("*.jpg"))
    if not train:
        sys.exit(f"No photos under {MATE_NATURE}; install them with `apt-get install -y mate-backgrounds`.")
    out = Path(args.out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    for f in train:
        save_image(out / "train" / f"{f.stem}.png", resize_short_side(load_image(f), args.short_side))
    for name, img in heldout_photos().items():
        save_image(out / "heldout" / f"{name}.png", resize_short_side(img, args.short_side))
    print(f"wrote {len(train)} training and {len(HELDOUT)} held-out photos to {out} (short side {args.short_side})")
    return out


if __name__ == "__main__":
    main()
