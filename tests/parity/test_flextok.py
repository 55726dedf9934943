"""FlexTok parity against the shared fixture (official apple/ml-flextok outputs for seeded weights).

Only the public API: zoo.convert(...) then encode / decode (plus the one-step velocity call the
fixture records). Tolerances from the fixture README: tokens exact, features/velocity 1e-4,
samples/images 1e-3.
"""

import pytest
import torch

import zoo
from tests.conftest import parity_dir


@pytest.fixture(scope="module")
def setup():
    from safetensors.torch import load_file

    d = parity_dir("flextok")
    model = zoo.convert("flextok", checkpoint=d / "weights.safetensors", config=d / "config.json")
    io = load_file(str(d / "io.safetensors"))
    tokens = zoo.Tokens(ids=io["tokens"], layout="1d", lengths=io["keep_k"], meta={"family": "flextok", "image_size": [64, 64]})
    return model, io, tokens


def _close(a, b, atol):
    err = (a - b).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol}"


def test_encode_tokens_exact(setup):
    model, io, _ = setup
    tokens = model.encode((io["rgb"] + 1) / 2)  # fixture images are in [-1, 1]
    assert torch.equal(tokens.ids, io["tokens"])
    assert tokens.lengths.tolist() == [8, 8]
    # any prefix is the prefix of the full sequence (causal registers)
    assert torch.equal(model.encode((io["rgb"] + 1) / 2, num_tokens=3).ids, io["tokens"][:, :3])


def test_velocity_cond_and_uncond(setup):
    model, io, tokens = setup
    _close(model.velocity(io["vel_x_t"], io["vel_t"], tokens), io["vel_cond"], 1e-4)
    _close(model.velocity(io["vel_x_t"], io["vel_t"], tokens, cond=False), io["vel_uncond"], 1e-4)


@pytest.mark.parametrize("name,scale,apg", [("nocfg", 1.0, False), ("cfg", 7.5, True), ("cfg_plain", 3.0, False)])
def test_few_step_samples(setup, name, scale, apg):
    model, io, tokens = setup
    lat = model.decode(tokens, steps=4, guidance_scale=scale, apg=apg, noise=io["sample_noise"], return_latents=True)
    _close(lat, io[f"sample_latents_{name}"], 1e-3)


def test_decode_images_with_generator(setup):
    model, io, tokens = setup
    for name, scale, apg in [("cfg", 7.5, True), ("nocfg", 1.0, False)]:
        img = model.decode(tokens, steps=4, guidance_scale=scale, apg=apg, generator=torch.Generator().manual_seed(4))
        _close(img, (io[f"sample_rgb_{name}"].clamp(-1, 1) + 1) / 2, 1e-3)  # fixture [-1, 1] -> API [0, 1]


def test_header_only_conversion_reads_the_embedded_config(setup):
    """The released model.safetensors carries its config in the header: convert without the fixture's
    config.json; only what the header lacks (the VAE's GroupNorm groups) comes from a diffusers VAE config."""
    import json

    model, _, _ = setup
    d = parity_dir("flextok")
    with pytest.raises(ValueError, match="GroupNorm"):
        zoo.convert("flextok", checkpoint=d / "weights.safetensors")
    vae_cfg = {"_class_name": "AutoencoderKL", **json.loads((d / "config.json").read_text())["vae_autoencoderkl_config"]}
    header_only = zoo.convert("flextok", checkpoint=d / "weights.safetensors", config=vae_cfg)
    assert header_only.cfg == model.cfg
    sd_a, sd_b = model.state_dict(), header_only.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


def test_training_flow_forward_matches_the_official_velocity(setup):
    """The training path (train_flow_decoder.py's flow_forward) at the fixture's noise, timesteps and kept
    prefixes gives the official decoder velocity and the official target eps - x0 (eval: no condition dropout)."""
    model, io, _ = setup
    model.eval()
    out = model.flow_forward((io["rgb"] + 1) / 2, t=io["vel_t"], noise=io["vel_noise"], keep=io["keep_k"])
    assert torch.equal(out.tokens.ids, io["tokens"])
    _close(out.target, io["vel_noise"] - io["vae_latents"], 1e-5)
    _close(out.velocity, io["vel_cond"], 1e-4)
