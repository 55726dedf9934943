"""Selftok training path: flow_forward (the train_flow_decoder.py agreement) with the schedule-masked
conditioning, agreement with the inference velocity, bad input, and two steps of recipes/_smoke/selftok.yaml."""

from __future__ import annotations

import dataclasses
import json
import runpy
from pathlib import Path

import pytest
import torch

import zoo
from zoo.api import FlowOutput
from zoo.tokenizers import selftok as st

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "training" / "train_flow_decoder.py"
SMOKE = REPO / "recipes" / "_smoke" / "selftok.yaml"


def _model(seed=0, **changes):
    torch.manual_seed(seed)
    return st.Selftok(dataclasses.replace(st.TINY_CONFIG, **changes))


def _batch(model, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = model.cfg.image_size
    x = torch.rand(b, 3, s, s, generator=g)
    return x, torch.randn(model.flow_noise_shape(x), generator=g)


def test_flow_forward_shapes_target_and_gradients_reach_every_part():
    model = _model().train()
    x, noise = _batch(model)
    t = torch.tensor([0.1, 0.5, 0.9])
    out = model.flow_forward(x, t=t, noise=noise)
    assert isinstance(out, FlowOutput)
    s = model.cfg.latent_size
    assert out.velocity.shape == out.target.shape == (3, model.cfg.latent_channels, s, s)
    with torch.no_grad():
        latents = model.images_to_latents(x)
    torch.testing.assert_close(out.target, noise - latents)  # Selftok's convention: t = 1 is noise
    assert out.tokens.ids.shape == (3, model.cfg.num_tokens) and set(out.losses) == {"commitment"}
    loss = ((out.velocity - out.target) ** 2).mean() + sum(out.losses.values())
    loss.backward()
    for name in ("encoder.query_tokens", "encoder.blocks.0.attn.qkv.weight", "quantizer.project_in.weight",
                 "post_norm.weight", "decoder.context_embedder.weight", "decoder.final_layer.linear.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and float(grad.abs().sum()) > 0, f"{name} got no gradient"


def test_hidden_tokens_get_no_gradient_visible_ones_do():
    """The decoder sees tokens 0..k(t) only, per item: the conditioning of the others gets exact zeros."""
    model = _model().train()
    x, noise = _batch(model, b=3)
    t = torch.tensor([0.05, 0.45, 1.0])
    captured = {}

    def keep(_module, _inp, out):
        out.retain_grad()
        captured["cond"] = out

    handle = model.post_norm.register_forward_hook(keep)
    out = model.flow_forward(x, t=t, noise=noise)
    handle.remove()
    out.velocity.square().sum().backward()
    grad = captured["cond"].grad.abs().sum(-1)  # [B, K]
    k = st.last_visible_token(st.time_index(t), model.cfg).tolist()
    assert k[0] < k[1] < k[2] == model.cfg.num_tokens - 1
    for i, ki in enumerate(k):
        assert bool((grad[i, : ki + 1] > 0).all()), f"item {i}: a visible token got no gradient"
        assert bool((grad[i, ki + 1 :] == 0).all()), f"item {i}: a token hidden at t={t[i]} got a gradient"


def test_flow_forward_matches_the_inference_velocity():
    """In eval mode the training pass computes the same function as encode + velocity (the sampler's call)."""
    model = _model(seed=2).eval()
    for p in model.parameters():  # adaLN layers start at zero upstream; give them values so the test can fail
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.05)
    x, noise = _batch(model, b=2, seed=3)
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        out = model.flow_forward(x, t=t, noise=noise)
    tokens = model.encode(x)
    assert torch.equal(out.tokens.ids, tokens.ids)
    latents = model.images_to_latents(x)
    x_t = t[:, None, None, None] * noise + (1 - t[:, None, None, None]) * latents
    v = torch.cat([model.velocity(x_t[i : i + 1], t[i : i + 1], tokens[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(out.velocity, v, atol=1e-5, rtol=1e-4)


def test_training_steps_lower_the_flow_loss_on_real_structure():
    """A few optimiser steps on one fixed batch (fixed t, noise) lower the velocity loss."""
    model = _model(seed=4).train()
    x, noise = _batch(model, b=4, seed=5)
    x = torch.nn.functional.avg_pool2d(x, 8).repeat_interleave(8, -1).repeat_interleave(8, -2)  # smooth images
    t = torch.tensor([0.2, 0.4, 0.6, 0.8])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model.flow_forward(x, t=t, noise=noise)
        loss = ((out.velocity - out.target) ** 2).mean() + sum(out.losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_flow_forward_bad_input():
    model = _model().train()
    x, noise = _batch(model, b=2)
    t = torch.tensor([0.2, 0.7])
    with pytest.raises(ValueError, match="flow_noise_shape"):
        model.flow_forward(x, t=t, noise=torch.randn_like(x))  # image-shaped noise: the flow runs on the latent
    with pytest.raises(ValueError, match="one per image"):
        model.flow_forward(x, t=torch.tensor([0.5]), noise=noise)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.flow_forward(x, t=torch.tensor([0.5, 1.5]), noise=noise)
    with pytest.raises(ValueError, match="64x64"):
        model.flow_forward(torch.rand(2, 3, 32, 32), t=t, noise=noise)
    renderer = _model(decoder="renderer", context_see_xt=False)
    with pytest.raises(RuntimeError, match="renderer"):
        renderer.flow_forward(x, t=t, noise=noise)


def test_recipes_parse():
    from zoo.train.recipe import read_recipe

    ns = runpy.run_path(str(PROGRAM), run_name="zoo_program_train_flow_decoder")
    for name in ("_smoke/selftok.yaml", "selftok/tiny-cpu.yaml", "selftok/res256-512.yaml"):
        cfg = read_recipe(ns["ProgramConfig"], REPO / "recipes" / name, [], program="train_flow_decoder")
        if cfg.model.family:
            st.SelftokConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.config.items()})


def test_smoke_recipe_two_steps(tmp_path):
    from zoo.media import save_image
    from zoo.train.recipe import read_recipe

    for i in range(4):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 44, 52, generator=torch.Generator().manual_seed(i)))
    ns = runpy.run_path(str(PROGRAM), run_name="zoo_program_train_flow_decoder")
    cfg = read_recipe(ns["ProgramConfig"], SMOKE, [f"data.paths=[{tmp_path / 'imgs'}]", f"train.run_dir={tmp_path / 'run'}"],
                      program="train_flow_decoder")
    final = ns["main"](cfg, env={})
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["flow"] > 0 and "commitment" in r for r in rows)
    tok = zoo.load(final)
    assert tok.family == "selftok" and tok.cfg.num_tokens == 8
    tokens = tok.encode(torch.rand(2, 3, 32, 32))
    out = tok.decode(tokens[:, :3], steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 32, 32) and bool(torch.isfinite(out).all())


def test_embedded_tiny_64_loads_and_decodes_prefixes():
    folder = REPO / "models" / "selftok" / "tiny-64"
    tok = zoo.load("selftok-tiny-64")
    assert tok.variant == "selftok-tiny-64" and tok.cfg.vae == "dct" and tok.cfg.num_tokens == 16
    assert (folder / "model.safetensors").stat().st_size < 10 * 2**20
    meta = json.loads((folder / "metrics.json").read_text())
    assert meta["command"].startswith("PYTHONPATH=. python benchmarks/eval_selftok_tiny.py") and meta["metrics"]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = tok.encode(x)
    assert torch.equal(tokens.ids, tok.encode(x).ids)  # eval encode is deterministic
    out = tok.decode(tokens[:, :4], steps=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 64, 64) and bool(torch.isfinite(out).all())
