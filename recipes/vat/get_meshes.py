"""Prepare VAT's real training meshes: Debian libcgal-demo's sample meshes + glmark2's bunny, with the
held-out split of recipes/splits.yaml (`meshes:`). Writes data/meshes/vat/{train,heldout}/ (copies of the
original files); measure with `zoo eval models/vat/tiny data/meshes/vat/heldout --split meshes --report DIR`.

    apt-get install -y libcgal-demo glmark2-data   # once (Debian)
    python recipes/vat/get_meshes.py [OUT_DIR]     # default data/meshes/vat

Only watertight meshes with 1k+ vertices are used (occupancy needs a closed surface). Duplicates of
one shape (bunny00 = glmark2's bunny, refined_elephant, fandisk_large, bear_bis, blobby-shuffled)
are left out so that no held-out shape is seen in training.
"""

import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from zoo.pipelines.splits import heldout

CGAL_TAR = Path("/usr/share/doc/libcgal-dev/data.tar.gz")
BUNNY = Path("/usr/share/glmark2/models/bunny.obj")
TRAIN = ("anchor_dense", "armadillo", "bear", "blobby", "boeing", "bones", "bull", "camel", "cheese",
         "couplingdown", "dino", "elephant", "ellipe0.003", "fandisk", "femur", "handle", "knot", "knot2", "man",
         "retinal", "turbine")
HELDOUT = heldout("meshes")  # cow, elk, hand, homer, knot1, rotor_small, triceratops


def main(out: Path) -> None:
    if set(TRAIN) & set(HELDOUT):
        sys.exit(f"recipes/splits.yaml holds out {sorted(set(TRAIN) & set(HELDOUT))}; take them out of TRAIN.")
    for f in (CGAL_TAR, BUNNY):
        if not f.is_file():
            sys.exit(f"{f} is missing: apt-get install -y libcgal-demo glmark2-data")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(CGAL_TAR) as tf:
            tf.extractall(tmp, filter="data")
        meshes = Path(tmp) / "data" / "meshes"
        for split, names in (("train", TRAIN), ("heldout", HELDOUT)):
            (out / split).mkdir(parents=True, exist_ok=True)
            for n in names:
                shutil.copy(meshes / f"{n}.off", out / split / f"{n}.off")
    shutil.copy(BUNNY, out / "train" / "bunny.obj")
    print(f"{len(TRAIN) + 1} training and {len(HELDOUT)} held-out meshes in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/meshes/vat"))
