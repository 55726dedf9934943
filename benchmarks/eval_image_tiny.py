"""Held-out metrics of a tiny image tokenizer next to JPEG, WebP and a thumbnail at the same bytes.

    python benchmarks/eval_image_tiny.py MODEL [--k 1 4 16 32] [--target-psnr 20 22] [--write-metrics]

MODEL: a catalogue name or a folder in zoo format (e.g. models/one_d_piece/tiny-64).
Data: fixed 64x64 crops (stride 32 grid) of the held-out photos written by training/prepare_photos.py
(scikit-image astronaut, coffee, chelsea, rocket at a short side of 160 px; never trained on).

For each token budget (every k of `--k` for variable-length families, else the full token map) the
payload is ceil(tokens * bits per token / 8) bytes. Baselines at the same payload, per crop:
  JPEG   Pillow, optimize=True, the highest quality 1..95 whose whole file fits the payload
  WebP   Pillow, method=6, the highest quality 0..100 whose whole file fits the payload
  thumb  the largest n x n RGB thumbnail (8 bits, 3 n^2 bytes, area-downsampled) that fits, upsampled
         bicubically (no entropy coding: a floor any codec should beat)
A codec whose smallest file is larger than the payload is "unreachable" for that crop; the table then
gives how many crops it reached and, separately, its smallest files' size and quality.
One-D-Piece's own comparison (arXiv 2501.10064, Sec. 5) is JPEG / WebP at the same bytes.
`--target-psnr T`: the distribution of k chosen by `encode(target_psnr=T)` (variable-length only).
`--write-metrics`: also writes MODEL/metrics.json ({"metrics": ..., "command": ...}) for `zoo cards`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

CROP, STRIDE = 64, 32


def heldout_crops(folder: Path, size: int = CROP, stride: int = STRIDE) -> tuple[Tensor, list[str]]:
    """Every `size` crop on a `stride` grid of every image in `folder` -> ([N, 3, size, size], names)."""
    from zoo.media.image import load_image

    files = sorted(folder.glob("*.png"))
    if not files:
        sys.exit(f"No held-out photos in {folder}; write them with `python training/prepare_photos.py`.")
    crops, names = [], []
    for f in files:
        img = load_image(f)
        h, w = img.shape[-2:]
        for top in range(0, h - size + 1, stride):
            for left in range(0, w - size + 1, stride):
                crops.append(img[:, top : top + size, left : left + size])
                names.append(f"{f.stem}@{top},{left}")
    return torch.stack(crops), names


def codec_table(x: Tensor, fmt: str) -> list[list[tuple[int, Tensor]]]:
    """Per crop, every quality setting -> (file bytes, decoded [3, H, W]); sorted by quality."""
    import numpy as np
    from PIL import Image

    from zoo.media.image import to_pil

    qualities = range(1, 96) if fmt == "JPEG" else range(0, 101)
    kw = {"optimize": True} if fmt == "JPEG" else {"method": 6}
    table = []
    for img in x:
        pil, rows = to_pil(img), []
        for q in qualities:
            buf = io.BytesIO()
            pil.save(buf, format=fmt, quality=q, **kw)
            n = buf.tell()
            buf.seek(0)
            with Image.open(buf) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            rows.append((n, torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255))
        table.append(rows)
    return table


def thumbnail(x: Tensor, n: int) -> Tensor:
    """[B, 3, H, W] -> an n x n 8-bit thumbnail (area average) upsampled back bicubically."""
    small = F.adaptive_avg_pool2d(x, n).mul(255).round().div(255)
    return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def quality(x: Tensor, y: Tensor) -> dict:
    from zoo import metrics

    return {"psnr": float(metrics.psnr(y, x).mean()), "ssim": float(metrics.ssim(y, x).mean())}


def baselines_at(x: Tensor, budget: int, tables: dict) -> dict:
    out = {}
    for fmt, table in tables.items():
        picks = [max((r for r in rows if r[0] <= budget), key=lambda r: r[0], default=None) for rows in table]
        hit = [i for i, p in enumerate(picks) if p is not None]
        entry = {"reached": f"{len(hit)}/{len(picks)}"}
        if hit:
            y = torch.stack([picks[i][1] for i in hit])
            entry.update(quality(x[hit], y))
            entry["mean_bytes"] = sum(picks[i][0] for i in hit) / len(hit)
        out[fmt.lower()] = entry
    n = int(math.isqrt(budget // 3))
    out["thumb"] = {"n": n, "bytes": 3 * n * n, **quality(x, thumbnail(x, n))} if n else {"n": 0}
    return out


def fmt_base(e: dict) -> str:
    if "psnr" not in e:
        return f"unreachable ({e['reached']})" if "reached" in e else "n/a"
    hit, total = e.get("reached", "1/1").split("/")
    reach = f", reached {hit}/{total} crops" if hit != total else ""
    size = f"{e['mean_bytes']:.0f} B" if "mean_bytes" in e else f"{e['n']}x{e['n']}, {e['bytes']} B"
    return f"{e['psnr']:.2f} / {e['ssim']:.3f} ({size}{reach})"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="catalogue name or zoo-format folder")
    ap.add_argument("--data", default="runs/data/photos_160/heldout", help="held-out photos (prepare_photos.py)")
    ap.add_argument("--k", type=int, nargs="*", default=None, help="token counts (variable-length families)")
    ap.add_argument("--target-psnr", type=float, nargs="*", default=[], help="targets for encode(target_psnr=)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--write-metrics", action="store_true", help="write MODEL/metrics.json for `zoo cards`")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import zoo

    t0 = time.time()
    tok = zoo.load(args.model).eval()
    x, names = heldout_crops(Path(args.data))
    photos = sorted({n.split("@")[0] for n in names})
    bs = args.batch_size
    bits_per_id = math.log2(tok.codebook_size)
    variable = hasattr(tok, "num_latent_tokens") and "num_tokens" in tok.encode.__code__.co_varnames
    with torch.inference_mode():
        tokens = [tok.encode(x[i : i + bs]) for i in range(0, len(x), bs)]
    ids_per_item = tokens[0].ids[0].numel()
    ks = (args.k or [ids_per_item]) if variable else [ids_per_item]
    tables = {"JPEG": codec_table(x, "JPEG"), "WEBP": codec_table(x, "WEBP")}
    smallest = {fmt.lower(): quality(x, torch.stack([rows[0][1] for rows in t])) | {
        "mean_bytes": sum(rows[0][0] for rows in t) / len(t)} for fmt, t in tables.items()}

    rows = []
    for k in ks:
        with torch.inference_mode():
            recon = torch.cat([tok.decode(t[:, :k] if variable else t) for t in tokens])
        payload = math.ceil((k if variable else ids_per_item) * bits_per_id / 8)  # ids [B, k] or the full map
        rows.append({"k": k, "bytes": payload, "bpp": 8 * payload / (CROP * CROP), **quality(x, recon),
                     "baselines": baselines_at(x, payload, tables)})

    targets = []
    for t in args.target_psnr:
        with torch.inference_mode():
            lengths = torch.cat([tok.encode(x[i : i + bs], target_psnr=t).lengths for i in range(0, len(x), bs)])
        counts = torch.bincount(lengths, minlength=tok.num_latent_tokens + 1)[1:]
        targets.append({"target_psnr": t, "mean_k": float(lengths.float().mean()),
                        "median_k": int(lengths.median()), "at_max_k": int((lengths == tok.num_latent_tokens).sum()),
                        "hist": {str(i + 1): int(c) for i, c in enumerate(counts) if c}})

    command = "python benchmarks/eval_image_tiny.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"{args.model}: {len(x)} held-out {CROP}x{CROP} crops of {', '.join(photos)} ({time.time() - t0:.0f} s)")
    print("| tokens | bytes | bpp | model PSNR / SSIM | JPEG same bytes | WebP same bytes | thumbnail |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["baselines"]
        print(f"| {r['k']} | {r['bytes']} | {r['bpp']:.4f} | {r['psnr']:.2f} / {r['ssim']:.3f} | {fmt_base(b['jpeg'])} | "
              f"{fmt_base(b['webp'])} | {fmt_base(b['thumb'])} |")
    for fmt, e in smallest.items():
        print(f"smallest {fmt.upper()} files (lowest quality): {e['mean_bytes']:.0f} B mean, "
              f"PSNR {e['psnr']:.2f}, SSIM {e['ssim']:.3f}")
    for t in targets:
        print(f"encode(target_psnr={t['target_psnr']:g}): mean k {t['mean_k']:.2f}, median {t['median_k']}, "
              f"{t['at_max_k']} crops at the maximum; k histogram {t['hist']}")

    comparable = [r for r in rows if "psnr" in r["baselines"]["thumb"]]  # a thumbnail needs >= 3 bytes
    beaten = [r for r in comparable if r["psnr"] < r["baselines"]["thumb"]["psnr"]]
    verdict = ("below the same-bytes thumbnail's PSNR at every token count: not yet a useful tokenizer"
               if comparable and len(beaten) == len(comparable) else
               f"below the same-bytes thumbnail's PSNR at {len(beaten)} of {len(comparable)} token counts")
    print(f"verdict: {verdict}")
    metrics = {"verdict (computed)": verdict, "held-out data": f"{len(x)} crops {CROP}x{CROP} (stride {STRIDE}) of skimage {', '.join(photos)}, "
                                "short side 160 px"}
    for r in rows:
        b = r["baselines"]
        key = f"k={r['k']} ({r['bytes']} B, {r['bpp']:.3f} bpp)" if variable else f"{r['k']} ids ({r['bytes']} B, {r['bpp']:.3f} bpp)"
        metrics[f"PSNR / SSIM {key}"] = f"{r['psnr']:.2f} / {r['ssim']:.3f}"
        metrics[f"JPEG / WebP / thumbnail at {r['bytes']} B"] = (
            f"{fmt_base(b['jpeg'])}; {fmt_base(b['webp'])}; {fmt_base(b['thumb'])}")
    for fmt, e in smallest.items():
        metrics[f"smallest {fmt.upper()} (lowest quality)"] = f"{e['mean_bytes']:.0f} B: {e['psnr']:.2f} / {e['ssim']:.3f}"
    for t in targets:
        metrics[f"k chosen by target_psnr={t['target_psnr']:g}"] = (
            f"mean {t['mean_k']:.2f}, median {t['median_k']}, {t['at_max_k']}/{len(x)} at max; histogram {t['hist']}")
    result = {"metrics": metrics, "command": command, "details": {"rows": rows, "targets": targets,
                                                                  "smallest_codec_files": smallest, "crops": names}}
    if args.write_metrics:
        folder = Path(args.model)
        if not folder.is_dir():
            sys.exit(f"--write-metrics needs MODEL to be a folder; {args.model} is not one.")
        (folder / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {folder / 'metrics.json'}")
    return result


if __name__ == "__main__":
    main()
