"""Prepare the real photos FlexTok tiny-cpu trains and is evaluated on (a fixed split, no download).

Train (15 photos): /usr/share/backgrounds/mate/nature/ (Debian mate-backgrounds, GPL-2+) except Dune
and Storm, plus scikit-image's astronaut, coffee, chelsea, rocket and the left view of stereo_motorcycle.
Held out (4 photos, never trained on): mate Dune.jpg and Storm.jpg, scikit-learn's china.jpg and flower.jpg.
Each photo is resized once (bicubic, antialiased) so its short side is 128, 192 and 256 px (train) or
192 px (held out) and written as PNG, so the loader decodes small files and takes random 64x64 crops.

    apt-get install -y mate-backgrounds   # if /usr/share/backgrounds/mate is missing
    python recipes/flextok/get_photos.py [OUT]   # OUT defaults to runs/data/flextok-photos
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

MATE = Path("/usr/share/backgrounds/mate/nature")
HELD_OUT_MATE = ("Dune.jpg", "Storm.jpg")
SKIMAGE_TRAIN = ("astronaut", "coffee", "chelsea", "rocket")
TRAIN_SIDES = (128, 192, 256)
HELD_OUT_SIDE = 192


def resized(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    s = side / min(w, h)
    return img.resize((round(w * s), round(h * s)), Image.BICUBIC, reducing_gap=3.0)


def main(out: Path) -> None:
    import skimage.data
    from sklearn.datasets import load_sample_images

    if not MATE.is_dir():
        sys.exit(f"{MATE} is missing: apt-get install -y mate-backgrounds")
    train = {p.stem: Image.open(p).convert("RGB") for p in sorted(MATE.glob("*.jpg")) if p.name not in HELD_OUT_MATE}
    train |= {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in SKIMAGE_TRAIN}
    train["motorcycle_left"] = Image.fromarray(skimage.data.stereo_motorcycle()[0]).convert("RGB")
    held = {Path(n).stem: Image.open(MATE / n).convert("RGB") for n in HELD_OUT_MATE}
    samples = load_sample_images()
    held |= {Path(f).stem: Image.fromarray(np.asarray(a)).convert("RGB") for f, a in zip(samples.filenames, samples.images)}
    for split, photos, sides in (("train", train, TRAIN_SIDES), ("heldout", held, (HELD_OUT_SIDE,))):
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for name, img in photos.items():
            for side in sides:
                resized(img, side).save(d / f"{name}_{side}.png")
        print(f"{split}: {len(photos)} photos -> {d}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/data/flextok-photos"))
