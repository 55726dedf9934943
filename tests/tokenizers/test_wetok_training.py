"""WeTok through the training programs: two steps of recipes/_smoke/wetok.yaml (reconstruction, then PatchGAN),
then the generative-decoder stage 2 of recipes/wetok/gd-stage2.yaml for one step (conv_in extended by zeros,
encoder and quantizer frozen)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "training"


def _run(program: str, recipe: Path, *overrides: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(PROGRAMS / program), str(recipe), *overrides], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow  # two short training processes; about a minute on a loaded machine
def test_smoke_two_steps_then_generative_decoder_stage2(tmp_path):
    from zoo.media import save_image

    for i in range(3):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 44, 52, generator=torch.Generator().manual_seed(i)))
    imgs = f"data.paths=[{tmp_path / 'imgs'}]"
    _run("train_autoencoder.py", REPO / "recipes" / "_smoke" / "wetok.yaml", imgs, f"train.run_dir={tmp_path / 'a'}")
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "adversarial" in rows[1] and "quantizer" in rows[0]
    plain = zoo.load(tmp_path / "a" / "final")
    x = torch.rand(1, 3, 32, 32)
    assert plain.family == "wetok" and plain.decode(plain.encode(x)).shape == (1, 3, 32, 32)

    plain.with_generative_decoder().save_pretrained(tmp_path / "gd-init")
    _run("finetune_decoder.py", REPO / "recipes" / "wetok" / "gd-stage2.yaml", imgs, f"train.run_dir={tmp_path / 'b'}",
         f"model.init_from={tmp_path / 'gd-init'}", "train.steps=1", "data.batch_size=2", "data.size=32",
         "data.resize_to=40", "train.progress=false", "train.tensorboard=false")
    gd = zoo.load(tmp_path / "b" / "final")
    assert gd.cfg.generative_decoder
    before, after = zoo.load(tmp_path / "gd-init").state_dict(), gd.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "decoder.conv_in.weight" in changed and not {k for k in changed if k.startswith(("encoder.", "quantizer."))}
    z = gd.cfg.z_channels
    assert gd.decoder.conv_in.weight[:, z:].abs().max() > 0  # the noise channels started at zero and moved
    assert torch.equal(gd.encode(x).ids, plain.encode(x).ids)  # frozen encoder and quantizer: same tokens
