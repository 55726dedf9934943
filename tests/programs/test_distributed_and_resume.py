"""Real processes: torchrun with 2 CPU processes (gloo) keeps identical replicas (the toy autoencoder, One-D-Piece's
stages whose passes leave parameters without gradients); each family's smoke recipe trains under FSDP2 to the
weights of DDP; a run killed with SIGKILL and resumed ends with exactly the weights of an uninterrupted run."""

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


def _torchrun(program: str, recipe, *overrides: str, launcher: bool = False):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           *([str(LAUNCH)] if launcher else []), str(REPO / "training" / program), str(recipe), *overrides]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240, cwd=REPO)


ODP_STAGES = ("loss.stages=[{name: warm-up, from_step: 0, continuous: true, weights: {proxy_decode: 1.0, quantizer: 0.0}},"
              " {name: proxy, from_step: 1, weights: {proxy: 1.0, quantizer: 0.0}}]")


def test_one_d_piece_stages_that_leave_parameters_without_gradients_keep_identical_replicas(image_dir, tmp_path):
    """The continuous warm-up (the quantizer's losses computed, weighted 0; the pixel decoder skipped) and a proxy
    stage with quantizer 0: the codebook is in the pass's graph but gets no gradient. Each step's checkpoint compares
    the ranks' parameters (save_checkpoint raises if they differ)."""
    from zoo.train.proxy import PatchKMeansTeacher

    teacher = tmp_path / "teacher.safetensors"
    PatchKMeansTeacher(torch.rand(32, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)), 8).save(teacher)
    common = [f"data.paths=[{image_dir}]", f"loss.proxy_teacher={teacher}", ODP_STAGES]
    proc = _torchrun("train_autoencoder.py", SMOKE / "one_d_piece.yaml", *common, f"train.run_dir={tmp_path / 'run'}",
                     "train.find_unused_parameters=true")
    assert proc.returncode == 0, proc.stderr[-4000:]
    for step in (1, 2):
        a, b = torch.load(tmp_path / "run" / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)["replicas"]["model"]
        assert a == b
    # without find_unused_parameters DDP cannot average anything: one sentence, at the first step
    proc = _torchrun("train_autoencoder.py", SMOKE / "one_d_piece.yaml", *common, f"train.run_dir={tmp_path / 'bad'}")
    assert proc.returncode != 0 and "set train.find_unused_parameters: true" in proc.stderr, proc.stderr[-4000:]


# family: (program, the data fixture, overrides). FlexTok's and Selftok's flow passes and VAT's occupancy pass call the
# decoder's methods outside its forward (the families' fsdp_forward_methods); FlexTok runs with REPA off.
FSDP_CASES = {
    "flextok": ("train_flow_decoder.py", "image_dir", ("model.config.repa_encoder=''", "model.config.repa_dim=0")),
    "selftok": ("train_flow_decoder.py", "image_dir", ()),
    "vat": ("train_autoencoder.py", "mesh_dir", ()),
    "xy_tokenizer": ("train_autoencoder.py", "speech_dir", ()),
    "wavtokenizer": ("train_autoencoder.py", "speech_dir", ()),
    "wetok": ("train_autoencoder.py", "image_dir", ()),
    "one_d_piece": ("train_autoencoder.py", "image_dir", ()),
}


# The families that declare methods for FSDP2 run by default; those that need nothing (~18 s each) run with -m slow.
@pytest.mark.parametrize("family", [f if f in ("flextok", "selftok", "vat") else pytest.param(f, marks=pytest.mark.slow)
                                    for f in FSDP_CASES])
def test_family_trains_under_fsdp_as_under_ddp(family, request, tmp_path):
    """Two steps of the family's smoke recipe (its stages, grad_accum, discriminators) on 2 processes: FSDP2 ends with
    the weights of DDP. find_unused_parameters: some passes leave parameters without gradients (Selftok's last encoder
    block's patch stream, VAT's codebook in the VAE stage), which DDP must be told; FSDP2 needs nothing."""
    if family == "flextok":
        pytest.importorskip("diffusers", reason="FlexTok's VAE is diffusers' AutoencoderKL")
    program, data, overrides = FSDP_CASES[family]
    common = [f"data.paths=[{request.getfixturevalue(data)}]", "train.find_unused_parameters=true",
              "train.ema_decay=0", "train.ckpt_every=1", *overrides]
    runs = {}
    for strategy in ("fsdp", "ddp"):
        proc = _torchrun(program, SMOKE / f"{family}.yaml", *common, f"train.strategy={strategy}",
                         f"train.run_dir={tmp_path / strategy}")
        assert proc.returncode == 0, proc.stderr[-4000:]
        runs[strategy] = load_file(tmp_path / strategy / "final" / "model.safetensors")
    start = torch.load(tmp_path / "ddp" / "checkpoints" / "step_00000001.pt", weights_only=True)["models"]["model"]
    assert runs["fsdp"].keys() == runs["ddp"].keys()
    for k, v in runs["ddp"].items():
        torch.testing.assert_close(runs["fsdp"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.equal(start[k], v) for k, v in runs["ddp"].items())  # the second step trained


def test_one_d_piece_dead_code_restarts_refuse_fsdp(image_dir, tmp_path):
    """Restarting dead codes writes into the learned codebook inside forward, which FSDP2 would lose: the recipe fails
    at setup, naming the reason, in one process as under torchrun; with the quantizer frozen nothing restarts."""
    common = [f"data.paths=[{image_dir}]", "train.strategy=fsdp", "model.config.dead_code_threshold=0.5"]
    with pytest.raises(ValueError, match="restarts dead codes.*Use train.strategy: ddp"):
        run("train_autoencoder", "one_d_piece.yaml", [*common, f"train.run_dir={tmp_path}"])
    from zoo.train.recipe import ModelConfig, build_tokenizer, load_yaml

    config = {**load_yaml(SMOKE / "one_d_piece.yaml")["model"]["config"], "dead_code_threshold": 0.5}
    assert build_tokenizer(ModelConfig(family="one_d_piece", config=config)).quantizer.fsdp_unsupported()
    frozen = build_tokenizer(ModelConfig(family="one_d_piece", config=config, freeze=("quantizer",)))
    assert frozen.quantizer.fsdp_unsupported() is None


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
