"""Proxy-code teachers (TiTok's stage 1) and One-D-Piece's cross-entropy on their codes, alone and
through training/train_autoencoder.py (fit the teacher, then a proxy-code step and a pixel step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zoo.train.proxy import PatchKMeansTeacher, fit_patch_kmeans, load_teacher

REPO = Path(__file__).resolve().parents[2]


def _two_colour_images(n: int = 6) -> torch.Tensor:
    """8x8 patches that are either all red or all blue, in a random layout per image."""
    g = torch.Generator().manual_seed(0)
    layout = torch.randint(0, 2, (n, 1, 4, 4), generator=g).float()  # 4x4 grid of 8x8 patches
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    img = layout * red[None, :, None, None] + (1 - layout) * blue[None, :, None, None]  # [n, 3, 4, 4]
    return F.interpolate(img, scale_factor=8, mode="nearest"), layout[:, 0].long()


def test_patch_kmeans_recovers_the_two_patch_kinds_and_round_trips(tmp_path):
    images, layout = _two_colour_images()
    teacher = fit_patch_kmeans(images, patch_size=8, num_codes=2, iters=5)
    ids = teacher(images)
    assert ids.shape == (6, 4, 4) and ids.dtype == torch.long
    # the two codes are the two colours, whichever index each got
    assert torch.equal(ids, layout) or torch.equal(ids, 1 - layout)
    teacher.save(tmp_path / "t.safetensors")
    again = load_teacher(tmp_path / "t.safetensors")
    assert again.patch_size == 8 and torch.equal(again(images), ids)


def test_teacher_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"\[K, 3 \* 8\^2 = 192\]"):
        PatchKMeansTeacher(torch.zeros(4, 10), patch_size=8)
    teacher = PatchKMeansTeacher(torch.zeros(4, 192), patch_size=8)
    with pytest.raises(ValueError, match="multiples of 8"):
        teacher(torch.rand(1, 3, 20, 16))
    with pytest.raises(FileNotFoundError, match="fit_proxy_teacher"):
        load_teacher(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"centroids": torch.zeros(4, 192)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a proxy teacher"):
        load_teacher(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="cannot give 64"):
        fit_patch_kmeans(torch.rand(1, 3, 16, 16), patch_size=8, num_codes=64)


def test_one_d_piece_proxy_cross_entropy():
    from zoo.tokenizers.one_d_piece import TINY_TEST, OneDPiece

    torch.manual_seed(0)
    model = OneDPiece(TINY_TEST).train()
    s, g = TINY_TEST.image_size, TINY_TEST.image_size // TINY_TEST.decoder_patch_size
    x = torch.rand(2, 3, s, s)
    ids = torch.randint(0, TINY_TEST.proxy_codebook_size, (2, g, g))
    out = model(x, proxy_ids=ids)
    ce = out.losses["proxy"]
    assert 0 < float(ce.detach()) and torch.isfinite(ce)
    grad = torch.autograd.grad(ce, model.encoder.to_token.weight)[0]
    assert grad.abs().sum() > 0  # the proxy loss trains the encoder, through the straight-through code
    assert "proxy" not in model(x).losses
    with pytest.raises(ValueError, match=r"proxy_ids must be \[B, g, g\]"):
        model(x, proxy_ids=ids[:, :1])


def test_proxy_stage_through_the_training_program(tmp_path):
    from zoo.media import save_image

    for i in range(3):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 44, 52, generator=torch.Generator().manual_seed(i)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    recipe = REPO / "recipes" / "_smoke" / "one_d_piece.yaml"
    teacher = tmp_path / "teacher.safetensors"
    common = [f"data.paths=[{tmp_path / 'imgs'}]", f"loss.proxy_teacher={teacher}"]

    def run(script, *args):
        proc = subprocess.run([sys.executable, str(REPO / "training" / script), str(recipe), *args], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    run("fit_proxy_teacher.py", *common, "--images", "8", "--iters", "2")
    assert load_teacher(teacher).num_codes == 32  # the recipe's proxy_codebook_size
    stages = ("loss.stages=[{name: proxy, from_step: 0, weights: {proxy: 1.0, quantizer: 0.0}},"
              " {name: pixels, from_step: 1, weights: {l2: 1.0}}]")
    run("train_autoencoder.py", *common, stages, f"train.run_dir={tmp_path / 'run'}")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "proxy" in rows[0] and "l2" not in rows[0]
    assert "l2" in rows[1] and "proxy" not in rows[1]
