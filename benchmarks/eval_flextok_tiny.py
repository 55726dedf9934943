"""Measure a FlexTok model on the held-out 64x64 crops of recipes/flextok/get_photos.py and write metrics.json.

Crops: every non-overlapping 64x64 tile of the 4 held-out photos (mate Dune, Storm; scikit-learn china, flower;
short side 192 px), never seen in training. FlexTok: encode all tokens, decode the first k (k = 1, 4, 16 and all)
with the model's default sampler settings and a fixed seed, and again with each of --also-steps (default 1: one
Euler step from pure noise, i.e. the decoder's estimate of the mean image given the tokens, which scores a higher
PSNR than a sample when the decoder is weak). Baselines at a similar size (token cost = k x 16 bits,
log2(64000) = 15.97): plain downsampling to s x s pixels at 8 bits per channel then bicubic upsampling
(s*s*24 bits), and JPEG / WebP at their lowest quality (Pillow; headers included in the bytes).

    python benchmarks/eval_flextok_tiny.py models/flextok/tiny-64 [--data runs/data/flextok-photos/heldout]
"""

import argparse
import io
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

import zoo
from zoo import metrics


def crops(folder: Path) -> torch.Tensor:
    out = []
    for f in sorted(folder.glob("*.png")):
        x = torch.from_numpy(__import__("numpy").asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255
        h, w = x.shape[-2:]
        for i in range(h // 64):
            for j in range(w // 64):
                out.append(x[:, i * 64 : (i + 1) * 64, j * 64 : (j + 1) * 64])
    return torch.stack(out)


def scores(ref: torch.Tensor, rec: torch.Tensor) -> dict:
    rec = rec.clamp(0, 1)
    return {"psnr": round(float(metrics.psnr(rec, ref).mean()), 2), "ssim": round(float(metrics.ssim(rec, ref).mean()), 4)}


def codec(ref: torch.Tensor, fmt: str, quality: int) -> tuple[torch.Tensor, float]:
    import numpy as np

    recs, sizes = [], []
    for x in ref:
        buf = io.BytesIO()
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(buf, fmt, quality=quality)
        sizes.append(buf.tell())
        recs.append(torch.from_numpy(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))).permute(2, 0, 1).float() / 255)
    return torch.stack(recs), sum(sizes) / len(sizes)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="runs/data/flextok-photos/heldout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--also-steps", type=int, nargs="*", default=[1], help="extra sampler step counts to measure")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    tok = zoo.load(args.model).eval()
    ref = crops(Path(args.data))
    n = tok.cfg.num_registers
    bits = math.log2(tok.codebook_size)
    result: dict = {"held_out_crops": len(ref)}
    t = tok.encode(ref)
    for k in sorted({1, 4, 16, n}):
        rec = tok.decode(t[:, :k], generator=torch.Generator().manual_seed(args.seed))
        name = "all" if k == n else str(k)
        for m, v in scores(ref, rec).items():
            result[f"flextok_{name}_tokens_{m}" if name != "all" else f"flextok_all_{n}_tokens_{m}"] = v
        result[f"flextok_{k}_tokens_bits"] = round(k * bits, 1)
        for steps in args.also_steps:
            rec = tok.decode(t[:, :k], steps=steps, generator=torch.Generator().manual_seed(args.seed))
            for m, v in scores(ref, rec).items():
                result[f"flextok_{k}_tokens_{steps}_step{'s' if steps > 1 else ''}_{m}"] = v
    for s in (1, 2, 4):
        small = (F.interpolate(ref, size=(s, s), mode="area") * 255).round() / 255
        rec = F.interpolate(small, size=(64, 64), mode="bicubic", align_corners=False)
        for m, v in scores(ref, rec).items():
            result[f"downsample_{s}x{s}_{s * s * 24}bits_{m}"] = v
    for fmt, q in (("JPEG", 1), ("WEBP", 0)):
        rec, size = codec(ref, fmt, q)
        for m, v in scores(ref, rec).items():
            result[f"{fmt.lower()}_q{q}_{m}"] = v
        result[f"{fmt.lower()}_q{q}_bits"] = round(size * 8)
    d = tok.cfg
    cmd = "python benchmarks/eval_flextok_tiny.py " + " ".join(sys.argv[1:])
    out = {"metrics": result, "command": cmd,
           "decode": {"steps": d.decode_steps, "guidance_scale": d.guidance_scale, "apg": d.apg, "seed": args.seed}}
    print(json.dumps(out, indent=2))
    Path(args.model, "metrics.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
