"""VAT decode: dense grid vs coarse-to-fine (`decode(..., coarse=C)`) on the held-out meshes, same tokens.

    PYTHONPATH=. python benchmarks/bench_vat_coarse_to_fine.py [--model vat-tiny] [--heldout data/meshes/vat/heldout]

Prints, per (resolution, coarse) pair, the wall time of both decodes of the whole held-out batch (2 threads),
the speed-up, the fraction of grid points on the same side of 0.5, and the largest difference among the
points whose dense value lies within 0.1 of the level.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import zoo
from zoo.media import mesh as M


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vat-tiny")
    ap.add_argument("--heldout", default="data/meshes/vat/heldout")
    ap.add_argument("--pairs", nargs="+", default=["64:16", "128:32"], help="resolution:coarse")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tok = zoo.load(args.model)
    files = sorted(f for f in Path(args.heldout).iterdir() if f.suffix.lower() in M.MESH_SUFFIXES)
    tokens = tok.encode([M.normalize_mesh(M.load_mesh(f), tok.cfg.normalize_bound) for f in files])
    print(f"{args.model}, {len(files)} held-out meshes, {args.threads} threads")
    for pair in args.pairs:
        r, c = (int(v) for v in pair.split(":"))
        t0 = time.perf_counter()
        dense = tok.decode(tokens, resolution=r)
        t1 = time.perf_counter()
        fast = tok.decode(tokens, resolution=r, coarse=c)
        t2 = time.perf_counter()
        same = ((dense > 0.5) == (fast > 0.5)).float().mean().item()
        near = (dense - 0.5).abs() < 0.1
        worst = float((dense - fast).abs()[near].max()) if near.any() else 0.0
        print(f"R={r} coarse={c}: dense {t1 - t0:.2f} s, coarse-to-fine {t2 - t1:.2f} s "
              f"({(t1 - t0) / (t2 - t1):.1f}x); same side of 0.5: {same:.6f}; max |diff| within 0.1 of it: {worst:.3f}")


if __name__ == "__main__":
    main()
