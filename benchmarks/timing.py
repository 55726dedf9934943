"""Timing helpers shared by the benchmarks: matmul peak, timed calls, FLOP counts, peak memory.

Benchmarks run as scripts (`python benchmarks/bench_x.py`), so they import this as `timing`.
"""

from __future__ import annotations

import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device, dtype=torch.float32, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n matmul: the reference that achieved GFLOP/s are quoted against."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def timed(fn, device, reps: int) -> float:
    """Mean seconds per call over `reps` calls, after one warm-up call."""
    fn()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / reps


def flops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def peak_mem_mb(device) -> float:
    """Peak GPU memory allocated, or the process peak RSS on CPU, in MB."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
