"""Selftok: token schedule, tiny-model API, sampler equivalence, converter against the released layouts, bad input."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import parity_dir
from zoo import Tokens, hub
from zoo.samplers import linspace_timesteps
from zoo.tokenizers import selftok as st


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return st.Selftok(st.TINY_CONFIG).eval()


@pytest.fixture(scope="module")
def tiny_renderer():
    torch.manual_seed(1)
    return st.Selftok(dataclasses.replace(st.TINY_CONFIG, decoder="renderer", context_see_xt=False)).eval()


def _latents(model, b=2, seed=0):
    s = model.cfg.latent_size
    return torch.randn(b, model.cfg.latent_channels, s, s, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- schedule
def _reference_k(T: int, stages, kps, K: int) -> int:
    """Independent float32 re-statement of the staged schedule."""
    low, base, k = 0, 0, 0
    for stop, n in zip(stages, kps):
        if T >= low:
            k = base + int(np.float32(np.float32(n / (stop - low)) * np.float32(T - low)))
        low, base = stop, base + n
    return min(max(k, 0), K - 1)


@pytest.mark.parametrize("cfg", [st.SelftokConfig(), st.TINY_CONFIG, st.SelftokConfig(num_tokens=1024, stages=(1000,), k_per_stage=(1024,))])
def test_schedule_matches_reference_and_is_monotone(cfg):
    T = torch.arange(0, 1001)
    k = st.last_visible_token(T, cfg)
    ref = [_reference_k(int(t), cfg.stages, cfg.k_per_stage, cfg.num_tokens) for t in T]
    assert k.tolist() == ref
    assert int(k[0]) == 0 and int(k[-1]) == cfg.num_tokens - 1
    assert bool((k[1:] >= k[:-1]).all())
    acc = np.cumsum((0,) + cfg.k_per_stage)
    for stop, base in zip(cfg.stages[:-1], acc[1:]):
        assert int(k[stop]) == base  # first token of each stage unlocks exactly at its border


def test_released_schedule_values():
    cfg = st.SelftokConfig()
    t = torch.tensor([0.0, 0.1, 0.2, 0.5, 0.9, 1.0])
    assert st.last_visible_token(st.time_index(t), cfg).tolist() == [0, 96, 192, 412, 504, 511]
    assert st.time_index(torch.tensor([0.3])).item() in (299, 300)


# ---------------------------------------------------------------------------- tiny model API
def test_encode_decode_images(tiny):
    x, kw = tiny.example_input(2, torch.Generator().manual_seed(0))
    t = tiny.encode(x, **kw)
    assert t.ids.shape == (2, 16) and t.ids.dtype == torch.int64 and t.layout == "1d"
    assert t.meta["family"] == "selftok" and t.meta["image_size"] == 64
    y = tiny.decode(t, steps=4, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    # seeded noise -> deterministic decode; explicit noise == the same noise drawn by the generator
    y2 = tiny.decode(t, steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)


def test_prefix_and_lengths_decode(tiny):
    lat = _latents(tiny)
    t = tiny.encode_latents(lat)
    noise = _latents(tiny, seed=5)
    short = tiny.decode_latents(t[:, :4], noise=noise, steps=3)
    assert short.shape == lat.shape and torch.isfinite(short).all()
    # lengths = 4 for every item behaves like the 4-token prefix
    padded = Tokens(t.ids, layout="1d", lengths=torch.tensor([4, 4]), meta=t.meta)
    torch.testing.assert_close(tiny.decode_latents(padded, noise=noise, steps=3), short, atol=1e-5, rtol=0)


def _official_style_sampler(model, tokens, noise, steps):
    """Upstream-style loop: full context, boolean key mask rebuilt each step from the schedule."""
    times = linspace_timesteps(steps)
    x = noise.clone()
    for i in range(steps):
        t = times[i].expand(x.shape[0])
        v = model.velocity(x, t, tokens)
        x = x - (times[i] - times[i + 1]) * v
    return x


def test_sampler_equals_masked_full_context_sampler(tiny):
    t = tiny.encode_latents(_latents(tiny))
    noise = _latents(tiny, seed=3)
    ours = tiny.decode_latents(t, noise=noise, steps=6)
    torch.testing.assert_close(ours, _official_style_sampler(tiny, t, noise, 6), atol=1e-5, rtol=0)


def test_renderer_api(tiny_renderer, tiny):
    t = tiny_renderer.encode_latents(_latents(tiny_renderer))
    out = tiny_renderer.render_latents(t)
    assert out.shape == (2, 16, 8, 8) and torch.isfinite(out).all()
    assert torch.equal(tiny_renderer.render_latents(t), out)
    assert tiny_renderer.decode(t).shape == (2, 3, 64, 64)
    with pytest.raises(RuntimeError, match="renderer"):
        tiny.render_latents(t)
    with pytest.raises(RuntimeError, match="diffusion decoder"):
        tiny_renderer.decode_latents(t)
    with pytest.raises(ValueError, match="one deterministic step"):
        tiny_renderer.decode(t, steps=8)


def test_dct_latent_round_trip():
    m = st.Selftok(st.TINY_CONFIG)
    basis = st._dct_basis(16, "cpu")
    torch.testing.assert_close(basis @ basis.t(), torch.eye(16), atol=1e-5, rtol=0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    img = torch.stack([0.2 + 0.6 * xx, 0.5 + 0.0 * yy, 0.3 + 0.4 * yy])[None]  # smooth ramps
    back = m.latents_to_images(m.images_to_latents(img))
    assert (back - img).abs().mean() < 0.02


def test_forward_losses(tiny_renderer):
    m = st.Selftok(st.TINY_CONFIG).train()
    x, _ = m.example_input(2, torch.Generator().manual_seed(0))
    out = m(x)
    assert set(out.losses) == {"velocity_mse", "commitment"} and out.recon.shape == x.shape
    sum(out.losses.values()).backward()
    assert m.encoder.query_tokens.grad is not None and m.decoder.patch_embed.weight.grad is not None
    r = st.Selftok(dataclasses.replace(st.TINY_CONFIG, decoder="renderer", context_see_xt=False)).train()
    assert set(r(x).losses) == {"latent_mse", "commitment"}


# ---------------------------------------------------------------------------- converter vs released layouts
def _read_tsv(path):
    out = {}
    for line in path.read_text().splitlines():
        key, shape = line.split("\t")
        out[key] = torch.empty(json_shape(shape), device="meta")
    return out


def json_shape(s):
    import json

    return json.loads(s)


RELEASED_PARAMS = {
    "image_size": 256, "k": 512, "stages": "200,400,600,800,1000", "k_per_stage": "192,184,72,48,16",
    "in_channels": 16, "encoder_hidden_size": 16, "enc": "Enc-Qformer-Uni-XL/2", "enable_enc_variable_size": True,
    "encoder_config": {"time_adaln": True, "qformer_mode": "dual", "pre_norm": False, "post_norm": True,
                       "xavier_init": False, "qk_norm": False, "attn_mask": False},
    "quantizer_config": {"codebook_size": 32768, "code_dim": 16, "K": 512},
    "model": "MMDiT_XL", "context_see_xt": True, "decoder_config": {"time_adaln": "pos_emb"},
}


@pytest.mark.parametrize("name", ["tokenizer_512", "renderer_512", "tokenizer_1024", "renderer_1024"])
def test_converter_consumes_released_layout(name):
    sd = _read_tsv(parity_dir("selftok") / f"keys_full_{name}.tsv")
    cfg = st.from_official_config(None, sd, {})
    variant = {"tokenizer_512": "selftok-512", "renderer_512": "selftok-512-renderer",
               "tokenizer_1024": "selftok-1024", "renderer_1024": "selftok-1024-renderer"}[name]
    assert cfg == next(v.config for v in st.VARIANTS if v.name == variant)  # zoo.load builds exactly this
    if name.endswith("512"):
        section = "renderer_tokenizer" if name.startswith("renderer") else "tokenizer"
        params = dict(RELEASED_PARAMS, model="MMDiT_XL_Renderer" if section != "tokenizer" else "MMDiT_XL")
        if section != "tokenizer":
            params.pop("context_see_xt")
        assert st.from_official_config({section: {"params": params}}, sd, {}) == cfg
    with torch.device("meta"):
        model = st.Selftok(cfg)
    ours = st.remap_state_dict(sd, cfg)
    hub.check_state_dict(model, ours, source=name)  # every key used, every tensor filled, shapes equal
    dropped = [k for k in sd if st._dropped(k, cfg)]
    assert all(k.startswith(("diffusion.", "encoder.final_layer_norm", "encoder.quantizer.", "model.y_embedder.",
                             "model.joint_blocks.23.context_block.t_embedder.", "model.pos_embed")) for k in dropped)
    n_params = sum(p.numel() for p in model.parameters())
    assert 2.0e9 < n_params < 2.3e9  # ~2.17 B, as the research notes measured upstream


def test_converter_rejects_unknown_and_missing_keys():
    d = parity_dir("selftok")
    sd, meta = hub.read_checkpoint(d / "weights.safetensors")
    cfg = st.from_official_config(hub.read_config_file(d / "config.json"), sd, meta)
    extra = dict(sd, **{"model.some_new_layer.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="some_new_layer"):
        hub.load_state_dict_strict(st.Selftok(cfg), st.remap_state_dict(extra, cfg))
    missing = {k: v for k, v in sd.items() if k != "encoder.query_tokens"}
    with pytest.raises(ValueError, match="Selftok checkpoint"):
        st.from_official_config(None, missing, {})
    with pytest.raises(ValueError, match="k=32"):
        cfgd = hub.read_config_file(d / "config.json")
        cfgd["tokenizer"]["params"]["k"] = 32
        st.from_official_config(cfgd, sd, meta)
    with pytest.raises(ValueError, match="Unknown Selftok encoder"):
        st.from_official_config({"tokenizer": {"params": dict(RELEASED_PARAMS, enc="Enc-H/8")}}, sd, meta)
    with pytest.raises(ValueError, match="tokenizer.params"):
        st.from_official_config({"model": {}}, sd, meta)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("x, err, match", [
    (torch.rand(3, 64, 64), ValueError, "batch"),
    (torch.rand(1, 1, 64, 64), ValueError, "RGB"),
    (torch.rand(1, 3, 32, 32), ValueError, "64x64"),
    (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), TypeError, "float"),
    (torch.full((1, 3, 64, 64), float("nan")), ValueError, "NaN"),
    (torch.rand(0, 3, 64, 64), ValueError, "empty"),
    (torch.rand(1, 3, 64, 64) * 255, ValueError, r"\[0, 1\]"),
    ("image.png", TypeError, "tensors"),
])
def test_bad_images(tiny, x, err, match):
    with pytest.raises(err, match=match):
        tiny.encode(x)


def test_bad_latents_and_tokens(tiny):
    with pytest.raises(ValueError, match=r"\[B, 16, 8, 8\]"):
        tiny.encode_latents(torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="8x8"):
        tiny.encode_latents(torch.randn(1, 16, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        tiny.encode_latents(torch.full((1, 16, 8, 8), float("nan")))
    t = tiny.encode_latents(_latents(tiny))
    with pytest.raises(ValueError, match="ids"):
        tiny.decode_latents(Tokens(t.ids + 64, meta=t.meta), steps=1)
    with pytest.raises(ValueError, match="at most 16"):
        tiny.decode_latents(Tokens(torch.zeros(2, 17, dtype=torch.long), meta=t.meta), steps=1)
    with pytest.raises(ValueError, match="wavtokenizer"):
        tiny.decode(Tokens(t.ids, meta={"family": "wavtokenizer"}))
    with pytest.raises(ValueError, match="128px"):
        tiny.decode(Tokens(t.ids, meta=dict(t.meta, image_size=128)))
    with pytest.raises(ValueError, match="noise"):
        tiny.decode_latents(t, noise=torch.randn(2, 16, 4, 4), steps=1)
    with pytest.raises(ValueError, match="steps"):
        tiny.decode_latents(t, steps=0)
    with pytest.raises(ValueError, match="length of 0"):
        tiny.decode_latents(Tokens(t.ids, lengths=torch.tensor([0, 3]), meta=t.meta), steps=1)
    with pytest.raises(ValueError, match="1d tokens"):
        tiny.decode_latents(Tokens(t.ids.reshape(2, 4, 4), layout="2d", meta=t.meta), steps=1)
    with pytest.raises(TypeError, match="zoo.Tokens"):
        tiny.decode(t.ids)


def test_bad_config():
    with pytest.raises(ValueError, match="sums to"):
        st.SelftokConfig(k_per_stage=(1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="decoder"):
        st.SelftokConfig(decoder="gan")
    with pytest.raises(ValueError, match="vae"):
        st.SelftokConfig(vae="vqgan")


# -- fewest tokens for a target quality ------------------------------------------------------------
def test_target_psnr_extremes_and_bad_values(tiny, tiny_renderer):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for m in (tiny, tiny_renderer):
        assert m.encode(x, target_psnr=1e6).lengths.tolist() == [16, 16]  # unreachable -> all tokens
        assert m.encode(x, target_psnr=-1e6).lengths.tolist() == [1, 1]
    got = tiny.encode(x, target_psnr=1e6)
    assert torch.equal(got.ids, tiny.encode(x).ids) and got.meta["target_psnr"] == 1e6
    for p in (float("inf"), "30", True):
        with pytest.raises(ValueError, match="target_psnr"):
            tiny.encode(x, target_psnr=p)
    with pytest.raises(TypeError):
        tiny.encode(x, num_tokens=4)
