"""FlexTok through training/train_flow_decoder.py: two steps of recipes/_smoke/flextok.yaml (nested dropout,
condition dropout, REPA with a locally built, randomly initialised timm encoder), then the result loads and codes."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run

import zoo


def test_flextok_smoke_two_steps_with_repa(image_dir, tmp_path):
    pytest.importorskip("timm", reason="REPA's encoder in the smoke recipe is a timm ViT (pip install timm)")
    pytest.importorskip("diffusers", reason="FlexTok's VAE is diffusers' AutoencoderKL")
    final = run("train_flow_decoder", "flextok.yaml", [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}"])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["flow"] > 0 and 0 < r["repa"] <= 2 and torch.isfinite(torch.tensor(r["loss"]))
        assert abs(r["loss"] - r["flow"] - r["repa"]) < 1e-4  # REPA is part of the optimised loss
    tok = zoo.load(final)
    assert tok.family == "flextok" and tok.cfg.repa_encoder  # projector saved with the model, encoder not
    assert not any("repa_encoder" in k or k.startswith("_") for k in tok.state_dict())
    t = tok.encode(torch.rand(1, 3, 32, 32), num_tokens=4)
    assert t.ids.shape == (1, 4)
    assert tok.decode(t, steps=2, generator=torch.Generator().manual_seed(0)).shape == (1, 3, 32, 32)
