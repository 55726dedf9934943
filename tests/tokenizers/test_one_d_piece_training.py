"""One-D-Piece through the training program: two steps of recipes/_smoke/one_d_piece.yaml, then a
decoder-only fine-tune (encoder, quantizer and latent tokens frozen, as upstream stage 2)."""

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
PROGRAM = REPO / "training" / "train_autoencoder.py"
SMOKE = REPO / "recipes" / "_smoke" / "one_d_piece.yaml"


def _train(*overrides: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(PROGRAM), str(SMOKE), *overrides], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow  # two processes of a few CPU seconds each; a minute or more on a loaded machine
def test_smoke_two_steps_then_frozen_encoder_finetune(tmp_path):
    from zoo.media import save_image

    for i in range(3):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 44, 52, generator=torch.Generator().manual_seed(i)))
    _train(f"data.paths=[{tmp_path / 'imgs'}]", f"train.run_dir={tmp_path / 'a'}")
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "adversarial" in rows[1]
    first = zoo.load(tmp_path / "a" / "final")
    assert first.family == "one_d_piece" and first.decode(first.encode(torch.rand(1, 3, 32, 32))[:, :3]).shape == (1, 3, 32, 32)

    _train(f"data.paths=[{tmp_path / 'imgs'}]", f"train.run_dir={tmp_path / 'b'}", "train.steps=1",
           f"model.init_from={tmp_path / 'a' / 'final'}", "model.freeze=[encoder,quantizer]", "model.family=null",
           "model.config={}")
    tuned = zoo.load(tmp_path / "b" / "final")
    before, after = first.state_dict(), tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not {k for k in changed if k.startswith(("encoder.", "quantizer."))}
    assert "encoder.latent_tokens" in before and "encoder.latent_tokens" not in changed
