"""One-D-Piece speed: encode and decode (256 and 32 tokens; also the target-PSNR bisection) at batch 1
and 8, for the tiny test config and One-D-Piece-S-256 (random weights), with peak memory and achieved
GFLOP/s as a fraction of a matmul peak measured in the same run.

    PYTHONPATH=. python benchmarks/bench_one_d_piece.py                       # tiny + s-256, CPU, batch 1 and 8
    PYTHONPATH=. python benchmarks/bench_one_d_piece.py --configs s-256 --batches 1 --reps 3
    PYTHONPATH=. python benchmarks/bench_one_d_piece.py --device cuda --dtype bf16

Reference (official code, same CPU kind, 2 threads, S-256, random weights; /work/shared/research/
perf_official.md): batch 1 encode 0.204 s, decode 1.45 s (256 tokens) / 1.43 s (32 tokens); batch 4
encode 0.752 s, decode 5.67 s / 5.16 s. Decode is dominated by the full-resolution pixel decoder,
so 32 tokens are barely faster than 256.
"""

from __future__ import annotations

import argparse

import torch

from zoo.tokenizers import one_d_piece as odp
from timing import flops, matmul_peak, peak_mem_mb, timed  # noqa: E402  (benchmarks/timing.py)

CONFIGS = {"tiny": odp.TINY_TEST, "tiny-64": odp.TINY_64, "s-256": odp.S_256, "b-256": odp.B_256}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["tiny", "s-256"], choices=list(CONFIGS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--short", type=int, default=32, help="the short prefix decoded besides all tokens")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--psnr", action="store_true", help="also time encode(target_psnr=...) (bisection, ~log2 N decodes)")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_grad_enabled(False)
    peak = matmul_peak(device, dtype)
    print(f"device {device}, {args.dtype}, threads {torch.get_num_threads()}, matmul peak {peak:.1f} GFLOP/s")
    print(f"{'config':7} {'op':14} {'batch':>5} {'s/call':>8} {'img/s':>8} {'GFLOP/s':>8} {'%peak':>6} {'peakMB':>7}")
    for name in args.configs:
        torch.manual_seed(0)
        model = odp.OneDPiece(CONFIGS[name]).eval().to(device, dtype).requires_grad_(False)  # FlopCounterMode vs inference_mode
        n, s = model.cfg.num_latent_tokens, model.cfg.image_size
        for b in args.batches:
            x = torch.rand(b, 3, s, s, device=device)
            tokens = model.encode(x.to(dtype))
            rows = [("encode", lambda: model.encode(x.to(dtype))),
                    (f"decode {n}", lambda: model.decode(tokens)),
                    (f"decode {min(args.short, n)}", lambda: model.decode(tokens[:, : min(args.short, n)]))]
            if args.psnr:
                rows.append(("encode psnr20", lambda: model.encode(x.to(dtype), target_psnr=20.0)))
            for op, fn in rows:
                t = timed(fn, device, args.reps)
                f = flops(fn)
                print(f"{name:7} {op:14} {b:5d} {t:8.3f} {b / t:8.2f} {f / t / 1e9:8.1f} {100 * f / t / 1e9 / peak:6.1f} "
                      f"{peak_mem_mb(device):7.0f}")
        del model


if __name__ == "__main__":
    main()
