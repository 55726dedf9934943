"""Each training program runs two steps on its recipes/_smoke config; fine-tuning changes only the
parts not frozen; recipes are read strictly."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, SMOKE, program, run

import zoo


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_autoencoder_image_two_steps_reconstruction_then_adversarial(toys, image_dir, tmp_path):
    final = run("train_autoencoder", "autoencoder_image.yaml", [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}"])
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    assert "adversarial" not in rows[0] and "perceptual" in rows[0]  # stage 1: reconstruction only
    assert "adversarial" in rows[1] and "disc_loss" in rows[1] and "feature_matching" in rows[1]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    tok = zoo.load(final)
    assert tok.family == "toy"
    ids = tok.encode(torch.rand(1, 3, 16, 16)).ids
    assert ids.shape == (1, 16)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_00000001.pt", "step_00000002.pt"]


def test_autoencoder_audio_two_steps_on_real_speech(toys, tmp_path):
    final = run("train_autoencoder", "autoencoder_audio.yaml", [f"data.paths=[{REPO / 'samples'}]", f"train.run_dir={tmp_path}"])
    rows = _rows(tmp_path)
    assert {"l1", "mel", "stft"} <= set(rows[0]) and {"adversarial", "feature_matching", "disc_loss"} <= set(rows[1])
    tok = zoo.load(final)
    audio = torch.rand(1, 1, 800) * 2 - 1
    assert tok.decode(tok.encode(audio, sample_rate=8000)).shape == (1, 1, 800)


def test_flow_decoder_two_steps(toys, image_dir, tmp_path):
    final = run("train_flow_decoder", "flow_decoder.yaml", [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}"])
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["flow"] > 0
    tok = zoo.load(final)
    out = tok.decode(tok.encode(torch.rand(2, 3, 16, 16)), steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_flow_decoder_t_one_prob_puts_that_share_of_samples_at_pure_noise(toys, image_dir, tmp_path, monkeypatch, share):
    from train_toys import ToyFlow

    seen, inner = [], ToyFlow.flow_forward

    def spy(self, x, *, t, noise):
        seen.append(t.detach().clone())
        return inner(self, x, t=t, noise=noise)

    monkeypatch.setattr(ToyFlow, "flow_forward", spy)
    run("train_flow_decoder", "flow_decoder.yaml",
        [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}", f"flow.t_one_prob={share}"])
    t = torch.cat(seen)
    assert t.numel() >= 2
    if share == 1.0:
        assert torch.equal(t, torch.ones_like(t))
    else:
        assert ((t > 0) & (t < 1)).all()  # logit-normal: never exactly 1


def test_accumulation_micro_steps_skip_the_gradient_sync_in_backward(toys, image_dir, tmp_path, monkeypatch):
    """FSDP2 reads set_requires_gradient_sync in its backward hooks, so the flag must still be off when backward runs
    on the micro-steps before the last (the toy exposes the FSDP2 method; single process, so nothing wraps it)."""
    from train_toys import ToyFlow

    flags, inner = [], ToyFlow.flow_forward
    state = {"sync": True}

    def spy(self, x, *, t, noise):
        out = inner(self, x, t=t, noise=noise)
        out.velocity.register_hook(lambda g: flags.append(state["sync"]) or g)
        return out

    monkeypatch.setattr(ToyFlow, "flow_forward", spy)
    monkeypatch.setattr(ToyFlow, "set_requires_gradient_sync", lambda self, on: state.update(sync=on), raising=False)
    run("train_flow_decoder", "flow_decoder.yaml",
        [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}", "train.grad_accum=3"])
    assert flags == [False, False, True] * 2  # two steps of three micro-steps


def test_flow_program_rejects_a_model_without_flow_forward(toys, image_dir, tmp_path):
    with pytest.raises(TypeError, match="flow_forward"):
        run("train_flow_decoder", "flow_decoder.yaml",
            [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}", "model.family=toy", "model.config={}"])


def test_flow_program_chooses_the_pass_by_family_not_by_attribute(toys, image_dir, tmp_path, monkeypatch):
    """A method named flow_forward does not make a flow model: the family's hook (zoo.train.families) does."""
    from toy_family import ToyTokenizer

    def flow_forward(self, x, *, t, noise):
        raise AssertionError("train_flow_decoder.py called a method found by name")

    monkeypatch.setattr(ToyTokenizer, "flow_forward", flow_forward, raising=False)
    with pytest.raises(TypeError, match="family 'toy'.*no flow_forward hook.*flextok, selftok"):
        run("train_flow_decoder", "flow_decoder.yaml",
            [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}", "model.family=toy", "model.config={}"])


@pytest.mark.parametrize("source", ["folder", "catalogue"])
def test_finetune_changes_only_the_unfrozen_parts(toys, image_dir, tmp_path, monkeypatch, source):
    from toy_family import ToyConfig, ToyTokenizer
    from zoo import hub

    torch.manual_seed(3)
    start = ToyTokenizer(ToyConfig())
    if source == "folder":
        init = tmp_path / "start"
        start.save_pretrained(init)
    else:  # the catalogue name "toy-embedded" resolves to models/toy/embedded
        monkeypatch.setattr(hub, "shelf_dir", lambda: tmp_path / "models")
        start.save_pretrained(tmp_path / "models" / "toy" / "embedded")
        init = "toy-embedded"
    run_dir = tmp_path / "run"
    final = run("finetune_decoder", "finetune_decoder.yaml",
                [f"model.init_from={init}", f"data.paths=[{image_dir}]", f"train.run_dir={run_dir}"])
    before, after = start.state_dict(), zoo.load(final).state_dict()
    for k in before:
        same = torch.equal(before[k], after[k])
        if k.startswith(("encoder.", "quantizer.")):
            assert same, f"{k} is frozen but changed"
        else:
            assert not same, f"{k} should have been trained"


def test_finetune_needs_init_from(toys, image_dir, tmp_path):
    with pytest.raises(ValueError, match="init_from"):
        run("finetune_decoder", "finetune_decoder.yaml", [f"data.paths=[{image_dir}]", f"train.run_dir={tmp_path}"])


def test_unknown_recipe_key_is_an_error(tmp_path):
    from zoo.train.recipe import read_recipe

    mod = program("train_autoencoder")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\]"):
        read_recipe(mod.ProgramConfig, SMOKE / "autoencoder_image.yaml", ["train.stepz=3"])
    with pytest.raises(ValueError, match="is for program 'train_autoencoder'"):
        read_recipe(program("finetune_decoder").ProgramConfig, SMOKE / "autoencoder_image.yaml", [], program="finetune_decoder")


def test_every_recipe_starts_with_its_command_and_parses():
    from zoo.train.recipe import load_yaml, parse

    for path in sorted((REPO / "recipes").rglob("*.yaml")):
        if path == REPO / "recipes" / "splits.yaml":  # the shared hold-out split, not a recipe
            continue
        head = path.read_text().splitlines()[:8]
        assert head[0].startswith("#"), f"{path} must start with comment lines saying what it trains"
        assert any("training/" in line and ".py" in line for line in head), f"{path}: the first lines must give the command"
        data = load_yaml(path)
        parse(program(data["program"]).ProgramConfig, data, where=str(path))


@pytest.mark.slow  # ~20 s of CPU for two WavTokenizer steps; over a minute on a loaded machine
def test_wavtokenizer_smoke_two_steps(tmp_path):
    final = run("train_autoencoder", "wavtokenizer.yaml", [f"data.paths=[{REPO / 'samples'}]", f"train.run_dir={tmp_path}"])
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2] and "adversarial" in rows[1]
    tok = zoo.load(final)
    assert tok.family == "wavtokenizer" and tok.codebook_size == 1024


def test_autoencoder_vat_two_stages_on_meshes(mesh_dir, tmp_path):
    final = run("train_autoencoder", "vat.yaml", [f"data.paths=[{mesh_dir}]", f"train.run_dir={tmp_path}"])
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    assert "model/occupancy" in rows[0] and "model/kl" in rows[0] and "model/commitment" not in rows[0]  # VAE stage
    assert "model/commitment" in rows[1] and "model/codebook" in rows[1]  # the quantiser joined
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    tok = zoo.load(final)
    assert tok.family == "vat" and not hasattr(tok, "continuous")  # the VAE stage is a training pass, not model state
    x, _ = tok.example_input(1)
    assert tok.decode(tok.encode(x), resolution=8).shape == (1, 8, 8, 8)


def test_autoencoder_vat_rejects_media_losses_and_continuous_for_others(mesh_dir, tmp_path):
    with pytest.raises(ValueError, match="do not apply"):
        run("train_autoencoder", "vat.yaml", [f"data.paths=[{mesh_dir}]", f"train.run_dir={tmp_path}",
                                              "loss.stages=[{name: a, from_step: 0, weights: {l1: 1.0}}]"])
