"""Throughput and peak memory of the shared quantizers at realistic sizes.

    PYTHONPATH=. python benchmarks/bench_quantizers.py [--device cpu|cuda] [--batch 8] [--tokens 256]

Each case runs in its own subprocess, so that peak memory (CPU: growth of the process's max RSS over
the set-up; CUDA: torch.cuda.max_memory_allocated over the set-up) belongs to that case alone.
Columns: tokens/s for encode (eval forward: latents -> ids), decode (ids -> quantized latents) and a
training step (train-mode forward + backward, EMA/entropy included); tokens = batch x tokens per item.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

CASES = {
    # name: (constructor, input channels)
    "VQ 4096x512": ("VectorQuantizer(512, 4096, ema_decay=0.99)", 512),
    "VQ 4096x512 cos,proj->12": ("VectorQuantizer(512, 4096, 12, cosine=True)", 512),
    "RVQ 8x1024 (d512)": ("ResidualVQ(512, 8, 1024, ema_decay=0.99)", 512),
    "FSQ 64k [8,8,8,5,5,5]": ("FSQ([8, 8, 8, 5, 5, 5])", 6),
    "LFQ 4x8 bits": ("LFQ(8, 4)", 32),
    "LFQ 8x8 bits": ("LFQ(8, 8)", 64),
    "Multiscale 1D 4096x32 (9 scales)": ("MultiScaleResidualQuantizer(32, 4096, SCALES)", 32),
}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _time(fn, device: str, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def run_case(name: str, device: str, batch: int, tokens: int, reps: int) -> dict:
    from zoo.quantizers import FSQ, LFQ, MultiScaleResidualQuantizer, ResidualVQ, VectorQuantizer  # noqa: F401

    ctor, dim = CASES[name]
    scales = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    scales = [s for s in scales if s < tokens] + [tokens]  # noqa: F841 (used by eval)
    torch.manual_seed(0)
    q = eval(ctor.replace("SCALES", "scales")).to(device)
    z = torch.randn(batch, tokens, dim, device=device)
    n = batch * tokens

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        peak = lambda: (torch.cuda.max_memory_allocated() - base) / 2**20  # noqa: E731
    else:
        base = _maxrss_mb()
        peak = lambda: _maxrss_mb() - base  # noqa: E731

    with torch.no_grad():
        ids = q.eval()(z).ids  # after the baseline, so its peak counts

    def encode():
        with torch.inference_mode():
            q.eval()(z)

    def decode():
        with torch.inference_mode():
            q.ids_to_quantized(ids)

    t_enc = _time(encode, device, reps)
    t_dec = _time(decode, device, reps)
    mem_infer = peak()

    zt = z.clone().requires_grad_(True)

    def train_step():
        out = q.train()(zt)
        loss = out.quantized.pow(2).mean() + sum(out.losses.values(), torch.zeros((), device=device))
        loss.backward()

    t_train = _time(train_step, device, reps)
    mem_train = peak()
    return {
        "name": name, "encode": n / t_enc, "decode": n / t_dec, "train": n / t_train,
        "mem_infer": mem_infer, "mem_train": mem_train, "ids": list(ids.shape),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.device, args.batch, args.tokens, args.reps)))
        return
    print(f"device={args.device} batch={args.batch} tokens/item={args.tokens} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")
    head = f"{'quantizer':34s} {'ids shape':>14s} {'encode tok/s':>13s} {'decode tok/s':>13s} {'train tok/s':>12s} " \
           f"{'peak MB infer':>13s} {'peak MB train':>13s}"
    print(head)
    print("-" * len(head))
    for name in CASES:
        cmd = [sys.executable, __file__, "--case", name, "--device", args.device, "--batch", str(args.batch),
               "--tokens", str(args.tokens), "--reps", str(args.reps)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{name:34s} FAILED: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{name:34s} {str(r['ids']):>14s} {r['encode']:13,.0f} {r['decode']:13,.0f} {r['train']:12,.0f} "
              f"{r['mem_infer']:13.1f} {r['mem_train']:13.1f}")


if __name__ == "__main__":
    main()
