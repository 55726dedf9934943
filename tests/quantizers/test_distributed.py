"""EMA statistics, k-means and dead-code restarts stay identical across data-parallel ranks
(gloo, 2 CPU processes, each rank with different data)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.quantizers import VectorQuantizer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # same init on every rank
        vq = VectorQuantizer(4, 16, ema_decay=0.9, kmeans_init=True, dead_code_threshold=0.5).train()
        gen = torch.Generator().manual_seed(100 + rank)  # different data per rank
        for _ in range(3):
            torch.manual_seed(10 + rank)  # different k-means / restart draws per rank: rank 0's must win
            vq(torch.randn(64, 4, generator=gen) + rank)
        torch.save({k: v.clone() for k, v in vq.state_dict().items()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: ~60 s on a busy 2-core machine
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_codebook_state_is_identical_across_ranks(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert bool(a["initialized"])
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs between ranks"
