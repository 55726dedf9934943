"""Write downscaled copies of the real photos the tiny image recipes train and evaluate on.

Decoding a 2560x1600 JPEG and resizing it takes ~0.4 s on one CPU thread, longer than a training
step of a tiny model; the recipes therefore read PNG copies whose short side is already the recipe's
`resize_to` (so `crop_image`'s resize is a no-op) and crop 64x64 patches from those.

Split (the project's one photo split, `photos:` in recipes/splits.yaml, read here):
  train/     the 12 Debian mate-backgrounds nature photos (/usr/share/backgrounds/mate/nature/*.jpg,
             GPL-2+; `apt-get install -y mate-backgrounds`)
  heldout/   the held-out photos of recipes/splits.yaml, never trained on (scikit-image astronaut, coffee,
             chelsea, rocket; scikit-learn china, flower), as heldout/<name>.png

With --wide, train/ also holds the other real photos that ship in wheels here (scikit-image retina,
hubble_deep_field, stereo_motorcycle left and right, immunohistochemistry, camera, moon, brick, grass,
gravel (grey photos as RGB); matplotlib grace_hopper), and every training photo at short sides 128, 160
and 256 (content at several scales). heldout/ is the same as without it. Evaluate with
`zoo eval NAME runs/data/photos_160/heldout --split photos --crop 64 --report DIR`.

    python training/prepare_photos.py [--out runs/data/photos_160] [--short-side 160]
    python training/prepare_photos.py --wide --out runs/data/photos_wide

Resizing: antialiased bicubic (torch), clamped to [0, 1], saved as 8-bit PNG (lossless from here on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.pipelines.splits import heldout

MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
HELDOUT = heldout("photos")


def resize_short_side(img: torch.Tensor, short: int) -> torch.Tensor:
    """[3, H, W] in [0, 1] -> [3, h, w] with min(h, w) == short (aspect kept)."""
    h, w = img.shape[-2:]
    s = short / min(h, w)
    size = (max(short, round(h * s)), max(short, round(w * s)))
    return F.interpolate(img[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)


def library_photos() -> dict[str, torch.Tensor]:
    """scikit-image's colour photos of the split and scikit-learn's sample images, [3, H, W] in [0, 1]."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    out = {name: _rgb(getattr(data, name)()) for name in ("astronaut", "coffee", "chelsea", "rocket")}
    sk = load_sample_images()
    for fname, arr in zip(sk.filenames, sk.images):
        out[Path(fname).stem] = _rgb(arr)
    return out


def heldout_photos() -> dict[str, torch.Tensor]:
    """The held-out photos of recipes/splits.yaml as [3, H, W] floats in [0, 1]."""
    photos = library_photos()
    missing = [n for n in HELDOUT if n not in photos]
    if missing:
        raise ValueError(f"recipes/splits.yaml holds out {missing}, which no photo source here provides.")
    return {n: photos[n] for n in HELDOUT}


WIDE_SKIMAGE = ("retina", "hubble_deep_field", "stereo_motorcycle", "immunohistochemistry", "camera", "moon", "brick",
                "grass", "gravel")
WIDE_SCALES = (128, 160, 256)


def _rgb(arr) -> torch.Tensor:
    """uint8 [H, W], [H, W, 3] or [H, W, 4] -> [3, H, W] floats in [0, 1]."""
    import numpy as np

    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return torch.from_numpy(arr[..., :3].copy()).permute(2, 0, 1).float() / 255


def wide_photos() -> dict[str, torch.Tensor]:
    """The extra training photos of --wide (those the split holds out are left out)."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    out = {}
    for name in WIDE_SKIMAGE:
        arr = getattr(data, name)()
        if name == "stereo_motorcycle":  # (left, right, disparity)
            out["motorcycle_left"], out["motorcycle_right"] = _rgb(arr[0]), _rgb(arr[1])
        else:
            out[name] = _rgb(arr)
    out |= library_photos()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        out["grace_hopper"] = _rgb(Image.open(f).convert("RGB"))
    return {n: img for n, img in out.items() if n not in HELDOUT}


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/data/photos_160", help="output folder (train/ and heldout/ inside)")
    ap.add_argument("--short-side", type=int, default=160)
    ap.add_argument("--wide", action="store_true", help="more training photos, each at short sides 128, 160, 256")
    args = ap.parse_args(argv)
    from zoo.media import save_image
    from zoo.media.image import load_image

    train = sorted(MATE_NATURE.glob("*.jpg"))
    if not train:
        sys.exit(f"No photos under {MATE_NATURE}; install them with `apt-get install -y mate-backgrounds`.")
    out = Path(args.out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    photos = {f.stem: load_image(f) for f in train if f.stem not in HELDOUT}
    if args.wide:
        photos.update(wide_photos())
    scales = WIDE_SCALES if args.wide else (args.short_side,)
    for name, img in photos.items():
        for short in scales:
            suffix = f"_{short}" if args.wide else ""
            save_image(out / "train" / f"{name}{suffix}.png", resize_short_side(img, short))
    for name, img in heldout_photos().items():
        save_image(out / "heldout" / f"{name}.png", resize_short_side(img, args.short_side))
    print(f"wrote {len(photos)} training photos (short sides {list(scales)}) and {len(HELDOUT)} held-out photos "
          f"to {out} (short side {args.short_side})")
    return out


if __name__ == "__main__":
    main()
