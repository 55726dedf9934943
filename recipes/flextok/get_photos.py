"""Prepare the real photos FlexTok tiny-cpu trains and is evaluated on (the split of recipes/splits.yaml, no download).

Train: /usr/share/backgrounds/mate/nature/ (Debian mate-backgrounds, GPL-2+) plus the left view of scikit-image's
stereo_motorcycle, minus anything recipes/splits.yaml holds out. Held out (never trained on): the `photos:` of
recipes/splits.yaml (scikit-image astronaut, coffee, chelsea, rocket; scikit-learn china, flower), as heldout/<name>.png.
Each photo is resized once (bicubic, antialiased) so its short side is 128, 192 and 256 px (train) or
192 px (held out) and written as PNG, so the loader decodes small files and takes random 64x64 crops.
(models/flextok/tiny-64 was trained on an earlier split; see models/flextok/NOTES.md.)

    apt-get install -y mate-backgrounds   # if /usr/share/backgrounds/mate is missing
    python recipes/flextok/get_photos.py [OUT]   # OUT defaults to runs/data/flextok-photos
    zoo eval models/flextok/tiny-64 runs/data/flextok-photos/heldout --split photos --crop 64 --report DIR
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.pipelines.splits import heldout

MATE = Path("/usr/share/backgrounds/mate/nature")
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
    held_out = heldout("photos")
    photos = {p.stem: Image.open(p).convert("RGB") for p in sorted(MATE.glob("*.jpg"))}
    photos |= {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
               for name in ("astronaut", "coffee", "chelsea", "rocket")}
    photos["motorcycle_left"] = Image.fromarray(skimage.data.stereo_motorcycle()[0]).convert("RGB")
    samples = load_sample_images()
    photos |= {Path(f).stem: Image.fromarray(np.asarray(a)).convert("RGB") for f, a in zip(samples.filenames, samples.images)}
    missing = [n for n in held_out if n not in photos]
    if missing:
        sys.exit(f"recipes/splits.yaml holds out {missing}, which no photo source here provides.")
    train = {n: img for n, img in photos.items() if n not in held_out}
    held = {n: photos[n] for n in held_out}
    for split, group, sides in (("train", train, TRAIN_SIDES), ("heldout", held, (HELD_OUT_SIDE,))):
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for name, img in group.items():
            for side in sides:
                resized(img, side).save(d / (f"{name}.png" if split == "heldout" else f"{name}_{side}.png"))
        print(f"{split}: {len(group)} photos -> {d}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/data/flextok-photos"))
