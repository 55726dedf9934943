"""Real processes: torchrun with 2 CPU processes (gloo) keeps identical replicas; a run killed with
SIGKILL and resumed ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, SMOKE, run
from safetensors.torch import load_file

LAUNCH = REPO / "tests" / "programs" / "launch.py"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_torchrun_two_processes_keep_identical_replicas(image_dir, tmp_path, strategy):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           str(LAUNCH), str(REPO / "training" / "train_autoencoder.py"), str(SMOKE / "autoencoder_image.yaml"),
           f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}", f"train.strategy={strategy}"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    state = torch.load(tmp_path / "checkpoints" / "step_00000001.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    if strategy == "ddp":  # checksums of both ranks' parameters after step 1 (save_checkpoint raises if they differ)
        for name in ("model", "discriminator"):
            a, b = state["replicas"][name]
            assert a == b
        assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # per-rank random streams
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_killed_run_resumes_to_the_same_weights(toys, image_dir, tmp_path):
    steps = 40
    common = [f"data.paths=[{image_dir}]", f"train.steps={steps}", "train.ckpt_every=1", "train.keep_checkpoints=3"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCH), str(REPO / "training" / "train_autoencoder.py"), str(SMOKE / "autoencoder_image.yaml"),
         *common, f"train.run_dir={killed}"],
        env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = killed / "checkpoints" / "step_00000003.pt"
    deadline = time.time() + 180
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed: " + proc.stderr.read().decode()[-2000:]
    assert not (killed / "final").exists()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same as the subprocess (OMP_NUM_THREADS=1): same reduction order
    try:
        run("train_autoencoder", "autoencoder_image.yaml", [*common, f"train.run_dir={killed}", "train.resume=auto"])
        whole = tmp_path / "whole"
        run("train_autoencoder", "autoencoder_image.yaml", [*common, f"train.run_dir={whole}", "train.resume=never"])
    finally:
        torch.set_num_threads(threads)
    a = load_file(killed / "final" / "model.safetensors")
    b = load_file(whole / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume (max diff {(a[k] - b[k]).abs().max()})"
    ca = torch.load(killed / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
    cb = torch.load(whole / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
    for name in ("model", "discriminator"):
        for k in cb["models"][name]:
            assert torch.equal(ca["models"][name][k], cb["models"][name][k]), f"{name}.{k}"
    assert ca["data"] == cb["data"]
