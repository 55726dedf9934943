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
    """GFLOP/s of an n x n matmul, its fastest of `reps` calls (as the models' timings are their fastest): the
    reference that achieved GFLOP/s are quoted against, and that a shared machine's stalls do not drag down."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / best_of(lambda: a @ b, device, reps) / 1e9


def best_of(fn, device, reps: int) -> float:
    """Seconds of the fastest of `reps` calls, after one warm-up call (the protocol of perf_official.md)."""
    fn()  # warm-up
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


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
