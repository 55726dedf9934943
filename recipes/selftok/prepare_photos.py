"""Training photos for recipes/selftok/tiny-cpu.yaml, resized once so that the loader does not decode a
2560x1920 JPEG for every 64x64 crop.

Reads the Debian mate-backgrounds nature photos (GPL-2+; `apt-get install -y mate-backgrounds`), resizes
the short side to 160 px (antialiased bicubic, as zoo.train.data does on the fly) and writes lossless PNGs
to runs/data/selftok-train/ (ignored by git). The recipe then crops 64x64 windows from them (its
`resize_to: 160` leaves them as they are). Held-out photos are not written here: they come from the
scikit-image / scikit-learn wheels (benchmarks/eval_selftok_tiny.py).

    python recipes/selftok/prepare_photos.py [--src /usr/share/backgrounds/mate/nature] [--out runs/data/selftok-train]
"""

import argparse
from pathlib import Path

import torch.nn.functional as F

from zoo.media.image import load_image, save_image

SHORT_SIDE = 160


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="/usr/share/backgrounds/mate/nature")
    ap.add_argument("--out", default="runs/data/selftok-train")
    args = ap.parse_args()
    files = sorted(p for p in Path(args.src).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"No photos under {args.src}; install them with: apt-get install -y mate-backgrounds")
    for path in files:
        img = load_image(path)  # [3, H, W] in [0, 1]
        h, w = img.shape[-2:]
        s = SHORT_SIDE / min(h, w)
        small = F.interpolate(img[None], size=(round(h * s), round(w * s)), mode="bicubic", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
        out = save_image(Path(args.out) / f"{path.stem}.png", small)
        print(f"{path.name}: {h}x{w} -> {small.shape[1]}x{small.shape[2]}  {out}")


if __name__ == "__main__":
    main()
