"""Held-out reconstruction of a small Selftok (the embedded `selftok-tiny-64`) at several prefix lengths,
next to classical codecs.

Held-out photos (never in the training data of recipes/selftok/tiny-cpu.yaml): scikit-image astronaut,
coffee, chelsea, rocket and scikit-learn china.jpg, flower.jpg. Each is resized to a short side of 160 px
(antialiased bicubic, as in training) and cut into five fixed 64x64 crops (the four corners and the centre
of its central 160x160 square): 30 crops. Tokens decode with the rectified-flow sampler at a fixed number
of Euler steps and a fixed noise seed. Reported per prefix length k: PSNR / SSIM (means over the crops)
and the bits (k x log2(codebook size)). Baselines: JPEG and WebP (Pillow) at their smallest files and a
few qualities (their bytes include the headers: neither can reach the token budget on 64x64 crops), and
a raw 8-bit RGB thumbnail (1x1, 2x2, 4x4; bicubic upsampling) at exactly 24, 96 and 384 bits. The
DCT-latent round trip (no tokens) bounds what any decoder of this latent can reach.

    PYTHONPATH=. python benchmarks/eval_selftok_tiny.py [MODEL] [--steps 25] [--seed 0] [--write]
MODEL: a catalogue name or folder (default: models/selftok/tiny-64). --write stores metrics.json
({"metrics": {...}, "command": ..., "details": {...}}, read by `zoo cards`) in the model folder and, with
--training TEXT, rewrites its README.md card with these numbers and that training note.
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SHORT_SIDE, CROP = 160, 64


def heldout_photos() -> dict[str, torch.Tensor]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    arrays = {n: getattr(skimage.data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")}
    sk = load_sample_images()
    for name, arr in zip(sk.filenames, sk.images):
        arrays[Path(name).stem] = arr
    return {n: torch.from_numpy(np.array(a[..., :3])).permute(2, 0, 1).float() / 255 for n, a in arrays.items()}


def heldout_crops() -> tuple[torch.Tensor, list[str]]:
    """-> [30, 3, 64, 64] in [0, 1] and their names."""
    crops, names = [], []
    for name, img in heldout_photos().items():
        h, w = img.shape[-2:]
        s = SHORT_SIDE / min(h, w)
        img = F.interpolate(img[None], size=(round(h * s), round(w * s)), mode="bicubic", antialias=True,
                            align_corners=False)[0].clamp(0, 1)
        top0, left0 = (img.shape[1] - SHORT_SIDE) // 2, (img.shape[2] - SHORT_SIDE) // 2
        far, mid = SHORT_SIDE - CROP, (SHORT_SIDE - CROP) // 2
        for tag, (dy, dx) in {"tl": (0, 0), "tr": (0, far), "bl": (far, 0), "br": (far, far), "c": (mid, mid)}.items():
            y, x = top0 + dy, left0 + dx
            crops.append(img[:, y : y + CROP, x : x + CROP])
            names.append(f"{name}/{tag}")
    return torch.stack(crops), names


def scores(x: torch.Tensor, y: torch.Tensor) -> dict:
    from zoo import metrics

    y = y.clamp(0, 1)
    return {"psnr": round(float(metrics.psnr(y, x).mean()), 3), "ssim": round(float(metrics.ssim(y, x).mean()), 4)}


def codec(x: torch.Tensor, fmt: str, quality: int) -> tuple[float, torch.Tensor]:
    """Pillow round trip of every crop -> (mean bytes, decoded [N, 3, H, W])."""
    from PIL import Image

    from zoo.media.image import to_pil

    sizes, out = [], []
    for img in x:
        buf = io.BytesIO()
        to_pil(img).save(buf, format=fmt, quality=quality)
        sizes.append(buf.tell())
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255)
    return sum(sizes) / len(sizes), torch.stack(out)


def thumbnail(x: torch.Tensor, side: int) -> torch.Tensor:
    small = F.interpolate(x, size=(side, side), mode="area")
    small = (small * 255).round() / 255  # 8 bits per channel
    return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description="Held-out metrics of a small Selftok next to JPEG / WebP / thumbnails.")
    ap.add_argument("model", nargs="?", default=str(REPO / "models" / "selftok" / "tiny-64"))
    ap.add_argument("--steps", type=int, default=25, help="Euler steps of the flow sampler")
    ap.add_argument("--seed", type=int, default=0, help="noise seed of the sampler")
    ap.add_argument("--prefixes", type=int, nargs="+", default=None, help="prefix lengths (default 1, 2, 4, ..., K)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="write metrics.json (and README.md with --training) into MODEL")
    ap.add_argument("--training", default=None, help="training note for the README.md card (data, steps, wall time, command)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import zoo

    tok = zoo.load(args.model).eval()
    x, names = heldout_crops()
    k_max, bits_per_token = tok.cfg.num_tokens, math.log2(tok.codebook_size)
    prefixes = args.prefixes or sorted({2**i for i in range(int(math.log2(k_max)) + 1)} | {k_max})
    tokens = tok.encode(x)
    used = torch.unique(tokens.ids)
    result = {"model": args.model, "crops": len(names), "steps": args.steps, "seed": args.seed,
              "codes_used": int(used.numel()), "codebook_size": tok.codebook_size, "prefixes": []}
    with torch.inference_mode():
        result["latent_roundtrip"] = scores(x, tok.latents_to_images(tok.images_to_latents(x)))
    for k in prefixes:
        y = tok.decode(tokens[:, :k], steps=args.steps, generator=torch.Generator().manual_seed(args.seed))
        row = {"tokens": k, "bits": round(k * bits_per_token, 1), **scores(x, y)}
        result["prefixes"].append(row)
        print(f"selftok k={k:3d}  {row['bits']:7.1f} bits  PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}", flush=True)
    result["thumbnail"] = []
    for side in (1, 2, 4):
        row = {"side": side, "bits": 24 * side * side, **scores(x, thumbnail(x, side))}
        result["thumbnail"].append(row)
        print(f"thumbnail {side}x{side}  {row['bits']:7d} bits  PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}")
    for fmt in ("JPEG", "WEBP"):
        rows = []
        for q in (1, 5, 10, 25, 50):
            n, y = codec(x, fmt, q)
            rows.append({"quality": q, "bytes": round(n, 1), "bits": round(8 * n, 1), **scores(x, y)})
            print(f"{fmt:4s} q={q:2d}  {8 * n:7.1f} bits  PSNR {rows[-1]['psnr']:6.2f}  SSIM {rows[-1]['ssim']:.4f}")
        result[fmt.lower()] = rows
    print(f"DCT latent round trip (no tokens): PSNR {result['latent_roundtrip']['psnr']:.2f}  "
          f"SSIM {result['latent_roundtrip']['ssim']:.4f}; codes used on the crops: {result['codes_used']}/{tok.codebook_size}")
    if args.write:
        folder = Path(args.model)
        if not (folder / "config.json").is_file():
            raise SystemExit(f"--write needs MODEL to be a model folder; {folder} has no config.json.")
        argv = [a for a in sys.argv[1:] if a not in (args.model,)]
        argv = argv[: argv.index("--training")] + argv[argv.index("--training") + 2 :] if "--training" in argv else argv
        command = "PYTHONPATH=. python benchmarks/eval_selftok_tiny.py " + shlex.join(
            [str(folder.resolve().relative_to(REPO)) if folder.resolve().is_relative_to(REPO) else str(folder), *argv])
        flat = summary(result)
        (folder / "metrics.json").write_text(json.dumps({"metrics": flat, "command": command, "details": result}, indent=2) + "\n")
        if args.training:
            from zoo import hub

            tok.variant = tok.variant or "selftok-tiny-64"
            text = hub.model_card(tok, metrics=flat, training=args.training + f"\n\nMeasured with `{command}`.", license="MIT")
            (folder / "README.md").write_text(text)
        print(f"wrote {folder / 'metrics.json'}")


def summary(result: dict) -> dict:
    """Flat `metric -> value` rows for the card (PSNR dB / SSIM, held-out crops)."""
    steps, n = result["steps"], result["crops"]
    out = {"held-out data": f"{n} crops 64x64 of 6 photos (skimage astronaut, coffee, chelsea, rocket; sklearn china, flower)"}
    for row in result["prefixes"]:
        out[f"PSNR / SSIM, {row['tokens']} tokens ({row['bits']:g} bits), {steps} steps"] = f"{row['psnr']:.2f} / {row['ssim']:.3f}"
    for row in result["thumbnail"]:
        out[f"baseline: {row['side']}x{row['side']} 8-bit RGB thumbnail ({row['bits']} bits)"] = f"{row['psnr']:.2f} / {row['ssim']:.3f}"
    for fmt in ("webp", "jpeg"):
        for row in result[fmt][:2]:
            out[f"baseline: {fmt.upper()} q={row['quality']} ({row['bits']:.0f} bits)"] = f"{row['psnr']:.2f} / {row['ssim']:.3f}"
    rt = result["latent_roundtrip"]
    out["DCT latent round trip, no tokens (upper bound)"] = f"{rt['psnr']:.2f} / {rt['ssim']:.3f}"
    out["codes used on the crops"] = f"{result['codes_used']} / {result['codebook_size']}"
    return out


if __name__ == "__main__":
    main()
