"""FlexTok speed: encode and decode (1, 8, 25 Euler steps; CFG doubles the decoder batch) at batch 1
and 8, for the tiny config and d12-d12 (random weights), plus peak memory and achieved GFLOP/s as a
fraction of a matmul peak measured in the same run.

    PYTHONPATH=. python benchmarks/bench_flextok.py                      # tiny + d12-d12, CPU
    PYTHONPATH=. python benchmarks/bench_flextok.py --configs tiny --batches 1 8 --steps 1 8 25
    PYTHONPATH=. python benchmarks/bench_flextok.py --device cuda --dtype bf16

Upstream publishes no throughput numbers (see /work/shared/research/perf_official.md); its packed
flex_attention path needs a ~60 s inductor compile on first call, which this SDPA port does not.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from zoo.tokenizers import flextok as ft
from timing import flops, matmul_peak, peak_mem_mb, timed  # noqa: E402  (benchmarks/timing.py)

CONFIGS = {
    "tiny": ft.TINY_CONFIG,
    "d12-d12": dataclasses.replace(ft.FlexTokConfig(), enc_dim=768, enc_depth=12, dec_dim=768, dec_depth=12),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["tiny", "d12-d12"], choices=list(CONFIGS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--steps", nargs="+", type=int, default=[1, 8, 25])
    ap.add_argument("--guidance", type=float, default=7.5, help="1.0 turns CFG off")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=120.0, help="skip a decode row whose 1-step time predicts more")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_grad_enabled(False)
    peak = matmul_peak(device, dtype)
    print(f"device {device}, {args.dtype}, threads {torch.get_num_threads()}, matmul peak {peak:.1f} GFLOP/s")
    print(f"{'config':8} {'op':10} {'batch':>5} {'steps':>5} {'s/call':>9} {'img/s':>9} {'GFLOP/s':>9} {'%peak':>6} {'peakMB':>8}")
    for name in args.configs:
        torch.manual_seed(0)
        model = ft.FlexTok(CONFIGS[name]).eval().to(device, dtype)
        s = model.cfg.image_size
        for b in args.batches:
            x = torch.rand(b, 3, s, s, device=device, dtype=torch.float32)
            enc = lambda: model.encode(x.to(dtype))  # noqa: E731
            t = timed(enc, device, args.reps)
            f = flops(enc)
            print(f"{name:8} {'encode':10} {b:5d} {'':>5} {t:9.3f} {b / t:9.2f} {f / t / 1e9:9.1f} {100 * f / t / 1e9 / peak:6.1f} {peak_mem_mb(device):8.0f}")
            tokens = model.encode(x.to(dtype))
            one = None
            for steps in args.steps:
                if one is not None and one * steps > args.max_seconds:
                    print(f"{name:8} {'decode':10} {b:5d} {steps:5d}   skipped (predicted {one * steps:.0f} s > --max-seconds)")
                    continue
                dec = lambda: model.decode(tokens, steps=steps, guidance_scale=args.guidance, generator=torch.Generator().manual_seed(0))  # noqa: E731
                t = timed(dec, device, args.reps)
                one = one or t / steps
                f = flops(dec)
                print(f"{name:8} {'decode':10} {b:5d} {steps:5d} {t:9.3f} {b / t:9.2f} {f / t / 1e9:9.1f} {100 * f / t / 1e9 / peak:6.1f} {peak_mem_mb(device):8.0f}")
        del model


if __name__ == "__main__":
    main()
