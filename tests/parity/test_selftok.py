"""Selftok parity: the official code's outputs for seeded random weights (../shared/parity/selftok)."""

import pytest
import torch

import zoo
from tests.conftest import parity_dir
from zoo import Tokens


@pytest.fixture(scope="module")
def fx():
    from safetensors.torch import load_file

    d = parity_dir("selftok")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    io = load_file(str(d / "io.safetensors"))
    tok = zoo.convert("selftok", checkpoint=d / "weights.safetensors", config=d / "config.json")
    ren = zoo.convert("selftok", checkpoint=d / "weights_renderer.safetensors", config=d / "config.json")
    return io, tok, ren


def _tokens(io):
    return Tokens(io["token_ids"], layout="1d", meta={"family": "selftok"})


def test_converter_picks_decoder_from_checkpoint_keys(fx):
    _, tok, ren = fx
    assert tok.cfg.decoder == "flow" and tok.cfg.context_see_xt
    assert ren.cfg.decoder == "renderer" and not ren.cfg.context_see_xt
    assert tok.cfg.num_tokens == 16 and tok.cfg.codebook_size == 64


def test_encoder_quantizer(fx):
    io, tok, _ = fx
    enc = tok.encode_latents_full(io["x0_latent"])
    torch.testing.assert_close(enc.features, io["enc_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.projected, io["enc_projected"], atol=1e-5, rtol=0)
    assert torch.equal(enc.ids, io["token_ids"])
    torch.testing.assert_close(enc.codes, io["codebook_lookup"], atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.cond, io["quantized"], atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.cond, io["decoder_context"], atol=1e-5, rtol=0)
    assert torch.equal(tok.encode_latents(io["x0_latent"]).ids, io["token_ids"])


def test_schedule_mask_and_velocity(fx):
    io, tok, _ = fx
    assert torch.equal(tok.visible_mask(io["velocity_t"]), io["velocity_mask"])
    v = tok.velocity(io["velocity_xt"], io["velocity_t"], _tokens(io))
    torch.testing.assert_close(v, io["velocity"], atol=1e-4, rtol=0)


def test_sampler_k_schedule(fx):
    from zoo.samplers import linspace_timesteps
    from zoo.tokenizers.selftok import last_visible_token, time_index

    io, tok, _ = fx
    k = last_visible_token(time_index(linspace_timesteps(50)[:-1]), tok.cfg)
    assert torch.equal(k, io["sampler_k_schedule"])


def test_full_sampler(fx):
    io, tok, _ = fx
    lat = tok.decode_latents(_tokens(io), noise=io["sampler_noise"], steps=50)
    torch.testing.assert_close(lat, io["sampler_latent"], atol=5e-4, rtol=0)


def test_renderer(fx):
    io, _, ren = fx
    torch.testing.assert_close(ren.render_latents(_tokens(io)), io["renderer_latent"], atol=5e-4, rtol=0)
