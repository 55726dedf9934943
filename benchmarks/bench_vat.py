"""VAT speed: shapes/s for encode (points -> tokens) and decode (tokens -> occupancy grid) at grid
resolutions 64 and 128, batch 1 and 8, for the tiny config and the paper-size design (random
weights), with peak memory and achieved GFLOP/s as a fraction of a matmul peak measured in the same run.

    PYTHONPATH=. python benchmarks/bench_vat.py                         # tiny, CPU
    PYTHONPATH=. python benchmarks/bench_vat.py --configs tiny 512b --batches 1 8 --resolutions 64 128
    PYTHONPATH=. python benchmarks/bench_vat.py --configs 512b --device cuda

No official numbers exist (VAT released no code). Marching cubes is not timed (CPU, scikit-image).
"""

from __future__ import annotations

import argparse

import torch

from zoo.tokenizers import vat as V
from timing import flops, matmul_peak, timed  # noqa: E402  (benchmarks/timing.py)
from timing import peak_mem_mb as peak_mb  # noqa: E402

CONFIGS = {"tiny": V.TINY_CONFIG, "512b": V.VATConfig()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny"], choices=list(CONFIGS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--resolutions", nargs="+", type=int, default=[64, 128])
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    peak = matmul_peak(device)
    print(f"device {device}, {torch.get_num_threads()} threads, fp32 matmul peak {peak:.1f} GFLOP/s")
    print(f"{'config':<6} {'params':>8} {'batch':>5} {'op':<10} {'shapes/s':>9} {'GFLOP/s':>8} {'of peak':>8} {'peak MB':>8}")
    for name in args.configs:
        torch.manual_seed(0)
        tok = V.VAT(CONFIGS[name]).to(device).eval()
        for b in args.batches:
            x, _ = tok.example_input(b, torch.Generator().manual_seed(0))
            x = torch.cat([x] * (tok.cfg.num_points // x.shape[1] + 1), dim=1)[:, : tok.cfg.num_points].to(device)
            tokens = tok.encode(x)
            rows = [("encode", lambda: tok.encode(x))]
            rows += [(f"decode@{r}", (lambda r=r: tok.decode(tokens, resolution=r))) for r in args.resolutions]
            for op, fn in rows:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                sec = timed(fn, device, args.reps)
                gflops = flops(fn) / 1e9 / sec
                print(f"{name:<6} {tok.num_parameters() / 1e6:>7.2f}M {b:>5} {op:<10} {b / sec:>9.2f} {gflops:>8.1f} "
                      f"{gflops / peak:>8.1%} {peak_mb(device):>8.0f}", flush=True)


if __name__ == "__main__":
    main()
