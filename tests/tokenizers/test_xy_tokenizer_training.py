"""XY-Tokenizer through the training program: the recipes hold the catalogue's configs, two steps of
recipes/_smoke/xy_tokenizer.yaml (mel + commitment, then MPD + MRD), then stage 2 from the result with
recipes/xy_tokenizer/stage2-16k.yaml's freeze list (encoder and quantizer fixed, tokens unchanged)."""

from __future__ import annotations

import json
import runpy
import types
from pathlib import Path

import pytest
import torch

import zoo
from zoo.tokenizers.xy_tokenizer import TINY_16K_CONFIG, TINY_CONFIG, XYTokenizer

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "training" / "train_autoencoder.py"
RECIPES = REPO / "recipes"
SMOKE = RECIPES / "_smoke" / "xy_tokenizer.yaml"
DECODER_PARTS = {"post_rvq_adapter", "upsample", "acoustic_decoder", "vocos", "head"}


def _recipe(path: Path, overrides=()):
    from zoo.train.recipe import read_recipe

    mod = types.SimpleNamespace(**runpy.run_path(str(PROGRAM), run_name="zoo_program_train_autoencoder"))
    return mod, read_recipe(mod.ProgramConfig, path, list(overrides), program="train_autoencoder")


def test_recipes_hold_the_catalogue_configs_and_stage2_freezes_everything_before_the_decoder():
    _, smoke = _recipe(SMOKE)
    assert XYTokenizer.config_from_dict(smoke.model.config) == TINY_CONFIG
    _, tiny = _recipe(RECIPES / "xy_tokenizer" / "tiny-cpu.yaml")
    assert XYTokenizer.config_from_dict(tiny.model.config) == TINY_16K_CONFIG
    variant = next(v for v in zoo.registry.family("xy_tokenizer").variants if v.name == "xy-tokenizer-tiny-16k")
    assert variant.config == TINY_16K_CONFIG and variant.embedded == "xy_tokenizer/tiny-16k"
    assert tiny.data.segment_seconds * 16000 % 1280 == 0  # whole code frames: recon and target lengths agree

    _, stage2 = _recipe(RECIPES / "xy_tokenizer" / "stage2-16k.yaml")
    parts = {n for n, m in XYTokenizer(TINY_CONFIG).named_children() if m.state_dict()}  # weights or EMA state
    assert set(stage2.model.freeze) == parts - DECODER_PARTS
    assert stage2.model.init_from == "xy-tokenizer-16k"
    assert all(s.weights.adversarial > 0 for s in stage2.loss.stages)


# 2 + 2 steps of the test config: 15 s measured on the shared 2-core machine (load ~10)
def test_smoke_two_steps_then_stage2_keeps_encoder_quantizer_and_tokens(tmp_path):
    samples = REPO / "samples"
    mod, cfg = _recipe(SMOKE, [f"data.paths=[{samples}]", f"train.run_dir={tmp_path / 'a'}"])
    first_dir = mod.main(cfg, env={})
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert "quantizer" in rows[0] and "adversarial" not in rows[0]
    assert {"adversarial", "feature_matching", "disc_loss"} <= set(rows[1])
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    first = zoo.load(first_dir)
    assert first.family == "xy_tokenizer" and first.cfg == TINY_CONFIG
    assert bool(first.rvq.layers[0].initialized)  # k-means ran on the first batch

    _, stage2 = _recipe(RECIPES / "xy_tokenizer" / "stage2-16k.yaml")
    freeze = "[" + ",".join(stage2.model.freeze) + "]"
    mod, cfg = _recipe(SMOKE, [f"data.paths=[{samples}]", f"train.run_dir={tmp_path / 'b'}", f"model.init_from={first_dir}",
                               f"model.freeze={freeze}", "model.family=null", "model.config={}"])
    tuned = zoo.load(mod.main(cfg, env={}))
    before, after = first.state_dict(), tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen = [k for k in before if k.split(".")[0] in stage2.model.freeze]
    assert any(k.startswith("rvq.") and "cluster_size" in k for k in frozen)  # EMA state is checked too
    assert not changed & set(frozen), f"frozen parts changed: {sorted(changed & set(frozen))[:5]}"
    assert {k.split(".")[0] for k in changed} == DECODER_PARTS

    clip = torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    a, b = first.eval().encode(clip, sample_rate=16000), tuned.eval().encode(clip, sample_rate=16000)
    assert torch.equal(a.ids, b.ids)
    assert not torch.equal(first.decode(a), tuned.decode(b))


def test_embedded_tiny_is_the_catalogue_model_and_its_card_numbers_reproduce():
    folder = REPO / "models" / "xy_tokenizer" / "tiny-16k"
    from zoo.media.audio import load_audio
    from zoo.metrics.audio import mel_distance

    tok = zoo.load("xy-tokenizer-tiny-16k").eval()
    assert tok.cfg == TINY_16K_CONFIG and tok.variant == "xy-tokenizer-tiny-16k"
    wav, sr = load_audio(REPO / "samples" / "speech_16k.wav")  # held out: never trained on
    assert sr == 16000
    rec = tok.decode(tok.encode(wav[None], sample_rate=sr))
    ref = wav[None, :, : rec.shape[-1]]
    measured = float(mel_distance(rec, ref, sr)[0])
    assert abs(measured - 1.7856) < 1e-3, measured  # speech_16k.wav in models/xy_tokenizer/NOTES.md (1.786)
    card = json.loads((folder / "metrics.json").read_text())
    assert card["command"].startswith("zoo eval xy-tokenizer-tiny-16k ") and "--split speech" in card["command"]
    torch.manual_seed(0)
    untrained = XYTokenizer(TINY_16K_CONFIG).eval()
    assert measured < float(mel_distance(untrained.decode(untrained.encode(wav[None], sample_rate=sr)), ref, sr)[0])
