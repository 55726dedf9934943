"""Measure a trained VAT on the held-out meshes of recipes/splits.yaml; writes REPORT_DIR/metrics.json.

    python benchmarks/eval_vat_tiny.py MODEL REPORT_DIR [--heldout data/meshes/vat/heldout] [--resolution 64]

`zoo eval` measures images and audio; 3D shapes are measured here until it takes them. No card is written:
copy REPORT_DIR/metrics.json ({"metrics", "command"}) into models/vat/<variant>/ (models/README.md).

For each held-out mesh (normalised into [-0.9, 0.9]^3, surface sampled with the model's num_points,
seed 0): encode -> decode at the grid resolution -> marching cubes, then against the original surface
Chamfer distance (mean of both directions' mean nearest-neighbour distances, unit-cube [-1, 1]^3
units) and F-score at tau = 0.02 and 0.05 (both from 20,000 surface samples per mesh), and volume IoU
on the grid against winding-number occupancy. The same for the first scales only, for the model
without its quantiser (the continuous VAE, an upper bound) and for a classical baseline at the same
size: a binary occupancy voxel grid of ceil(bits^(1/3))^3 bits (8^3 = 64 bytes for 63 tokens of 8
bits), trilinearly upsampled and meshed the same way. A decoded field with no surface scores
F-score 0 and is counted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import zoo
from zoo.media import mesh as M
from zoo.pipelines.splits import heldout
from zoo.metrics.shape import chamfer_distance, f_score, volume_iou

SAMPLES = 20_000
TAUS = (0.02, 0.05)


def surface_metrics(pred_mesh, gt_mesh, seed: int = 0) -> dict:
    if pred_mesh is None:
        return {"chamfer": float("nan"), **{f"fscore@{t}": 0.0 for t in TAUS}}
    a = torch.from_numpy(np.asarray(pred_mesh.sample(SAMPLES, seed=seed)))
    b = torch.from_numpy(np.asarray(gt_mesh.sample(SAMPLES, seed=seed + 1)))
    return {"chamfer": chamfer_distance(a, b), **{f"fscore@{t}": f_score(a, b, t) for t in TAUS}}


def mesh_or_none(grid):
    try:
        return M.marching_cubes(grid)
    except ValueError:
        return None


def decode_continuous(tok, points, r):
    """The decoder on the unquantised posterior mean (what stage 1 trained)."""
    with torch.inference_mode():
        z = tok.bottleneck(tok.encoder(points), sample=False).mean
        planes = tok.decoder.triplane(z)
        q = M.grid_points(r)[None]
        return tok.occupancy_logits(planes, q).sigmoid().reshape(r, r, r)


def voxel_baseline(mesh, bits: int, r: int):
    k = max(2, math.ceil(bits ** (1 / 3) - 1e-9))
    k = k - 1 if k**3 > bits * 1.02 else k  # stay within the budget (2% slack: 512 bits vs 504)
    centers = (torch.arange(k) + 0.5) / k * 2 - 1
    x, y, z = torch.meshgrid(centers, centers, centers, indexing="ij")
    occ = M.occupancy(mesh, torch.stack([x, y, z], -1).reshape(-1, 3)).float().reshape(1, 1, k, k, k)
    # cell centres -> the decode grid (align_corners=False maps cell centres correctly)
    up = F.interpolate(occ, size=(r, r, r), mode="trilinear", align_corners=False)[0, 0]
    return up, k


def mean(rows, key):
    """Mean over the meshes where the value exists (Chamfer needs a decoded surface); None if none."""
    vals = [r[key] for r in rows if not (isinstance(r[key], float) and math.isnan(r[key]))]
    return round(float(np.mean(vals)), 4) if vals else None


def _no_nan(obj):
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return None if isinstance(obj, float) and math.isnan(obj) else obj


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--heldout", default="data/meshes/vat/heldout")
    p.add_argument("--resolution", type=int, default=64)
    args = p.parse_args(argv)

    tok = zoo.load(args.model)
    tok.variant = "vat-tiny"
    r = args.resolution
    held = heldout("meshes")  # recipes/splits.yaml
    files = sorted(f for f in Path(args.heldout).iterdir() if f.suffix.lower() in M.MESH_SUFFIXES and f.stem in held)
    bits = tok.token_rate * math.log2(tok.codebook_size)
    rows = {"vat": [], "vat_first3": [], "vae": [], "voxel": []}
    t0 = time.time()
    for f in files:
        gt = M.normalize_mesh(M.load_mesh(f), tok.cfg.normalize_bound)
        gt_occ = M.occupancy(gt, M.grid_points(r)).float().reshape(r, r, r)
        points = M.sample_surface(gt, tok.cfg.num_points, seed=0)[None]
        tokens = tok.encode(points)
        for name, grid in (
            ("vat", tok.decode(tokens, resolution=r)[0]),
            ("vat_first3", tok.decode(tokens.first_scales(3), resolution=r)[0]),
            ("vae", decode_continuous(tok, points, r)),
            ("voxel", voxel_baseline(gt, int(bits), r)[0]),
        ):
            row = {"mesh": f.stem, **surface_metrics(mesh_or_none(grid), gt), "iou": volume_iou(grid, gt_occ)}
            rows[name].append(row)
            print(name, row, flush=True)
    k = voxel_baseline(M.normalize_mesh(M.load_mesh(files[0])), int(bits), 8)[1]
    metrics = {
        "held-out meshes": f"{len(files)} ({', '.join(f.stem for f in files)})",
        "bytes per shape": f"{tok.bytes_per_shape():g} ({int(tok.token_rate)} tokens x {math.log2(tok.codebook_size):g} bits)",
    }
    for name, label in (("vat", "VAT (all 6 scales)"), ("vat_first3", "VAT first 3 scales (7 tokens)"),
                        ("vae", "VAT without quantiser (continuous VAE)"),
                        ("voxel", f"baseline: {k}^3 binary voxels ({k**3 / 8:g} bytes), trilinear")):
        for key, kname in (("fscore@0.02", "F-score@0.02"), ("fscore@0.05", "F-score@0.05"),
                           ("chamfer", "Chamfer"), ("iou", f"IoU@{r}^3")):
            metrics[f"{label} {kname}"] = mean(rows[name], key)
        metrics[f"{label} shapes with a surface"] = f"{sum(not math.isnan(r['chamfer']) for r in rows[name])}/{len(files)}"
    metrics["protocol"] = (f"{r}^3 grid in [-1,1]^3, marching cubes at 0.5; Chamfer (L2 distances, mean of both "
                           f"directions) and F-score from {SAMPLES} surface samples per mesh; shapes in [-0.9,0.9]^3")
    metrics["paper target (Objaverse, 512-byte setting)"] = "F-score 92% (not comparable: other data, thresholds, size)"
    command = "python benchmarks/eval_vat_tiny.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)  # a report folder: cards are written by `zoo cards` / save_pretrained only
    from zoo.io import atomic_write_text

    atomic_write_text(out / "metrics.json", json.dumps({"metrics": metrics, "command": command,
                                                        "per_mesh": _no_nan(rows)}, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"evaluated {len(files)} meshes in {time.time() - t0:.0f} s; wrote {out / 'metrics.json'}")


if __name__ == "__main__":
    main()
