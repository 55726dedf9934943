"""Timing helpers shared by the benchmarks: matmul peak, timed calls, FLOP counts, peak memory.

Benchmarks run as scripts (`python benchmarks/bench_x.py`), so they import this as `timing`.
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from zoo.pipelines.bench import peak_memory_mb as peak_mem_mb  # noqa: F401  (the one `zoo bench` uses)
from zoo.pipelines.bench import sync


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
