"""FlexTok: contract on the tiny config, converter against every released key layout, bad input."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

import zoo
from zoo import hub, registry
from zoo.tokenizers import flextok as ft

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(os.environ.get("ZOO_PARITY_DIR", REPO / ".." / "shared" / "parity")) / "flextok"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = ft.FlexTok(ft.TINY_CONFIG).eval()
    # zero-initialised nothing here, but make the decoder output depend on every part
    return m


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


# -- contract ------------------------------------------------------------------------------------
def test_registry_and_catalogue():
    assert "flextok" in registry.FAMILIES
    names = zoo.list_models("flextok*")
    for n in ("flextok-d12-d12-in1k", "flextok-d18-d18-in1k", "flextok-d18-d28-in1k", "flextok-d18-d28-dfn", "flextok-tiny-64"):
        assert n in names
    spec, v = registry.lookup("flextok-d18-d28-in1k")
    assert v.config == ft.FlexTokConfig() and v.pretrained.hub_id == "EPFL-VILAB/flextok_d18_d28_in1k"


def test_encode_decode_shapes_and_prefixes(model, images):
    assert model.codebook_size == 64000 and model.num_codebooks == 1 and model.token_rate == 16
    t = model.encode(images)
    assert t.ids.shape == (2, 16) and t.ids.dtype == torch.int64 and t.layout == "1d"
    assert t.lengths.tolist() == [16, 16] and t.meta["image_size"] == [64, 64] and t.meta["family"] == "flextok"
    assert 0 <= int(t.ids.min()) and int(t.ids.max()) < 64000
    assert torch.equal(model.encode(images).ids, t.ids)  # deterministic (posterior mode)
    for k in (1, 5, 16):  # causal registers: any k is a prefix of the full sequence
        assert torch.equal(model.encode(images, num_tokens=k).ids, t.ids[:, :k])
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    out = model.decode(t[:, :4], steps=2, generator=g())
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, model.decode(t[:, :4], steps=2, generator=g()))
    # decoding the 4-token prefix ignores what follows it (masked by the learned token)
    noisy = t.ids.clone()
    noisy[:, 4:] = 7
    same = zoo.Tokens(noisy, lengths=torch.tensor([4, 4]), meta=t.meta)
    assert torch.allclose(model.decode(same, steps=2, generator=g()), out)
    # per-item lengths in one batch
    mixed = zoo.Tokens(t.ids, lengths=torch.tensor([1, 16]), meta=t.meta)
    both = model.decode(mixed, steps=2, guidance_scale=1.0, generator=g())
    one = model.decode(t[:1, :1], steps=2, guidance_scale=1.0, generator=g())
    assert torch.allclose(both[:1], one, atol=1e-5)


def test_guidance_modes_and_noise(model, images):
    t = model.encode(images, num_tokens=8)
    noise = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    a = model.decode(t, steps=3, guidance_scale=1.0, noise=noise, return_latents=True)
    b = model.decode(t, steps=3, guidance_scale=4.0, apg=False, noise=noise, return_latents=True)
    c = model.decode(t, steps=3, guidance_scale=4.0, apg=True, noise=noise, return_latents=True)
    d = model.decode(t, steps=3, guidance_scale=lambda s: 4.0, apg=True, noise=noise, return_latents=True)
    assert a.shape == (2, 16, 8, 8)
    assert not torch.allclose(a, b) and not torch.allclose(b, c) and torch.allclose(c, d)


def test_apg_matches_definition():
    torch.manual_seed(0)
    vc, diff = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3) * 3
    out = ft.apg_guidance(vc, diff, 5.0)
    clipped = diff * torch.clamp(2.5 / diff.flatten(1).norm(dim=1), max=1)[:, None, None, None]
    u = vc.flatten(1) / vc.flatten(1).norm(dim=1, keepdim=True)
    orth = clipped.flatten(1) - (clipped.flatten(1) * u).sum(1, keepdim=True) * u
    assert torch.allclose(out, vc + 4.0 * orth.view_as(vc), atol=1e-5)


def test_forward_training_pass(model, images):
    model.train()
    try:
        out = model(images, generator=torch.Generator().manual_seed(0))
    finally:
        model.eval()
    assert out.recon.shape == images.shape and out.tokens.ids.shape == (2, 16)
    assert set(out.losses) >= {"flow"} and torch.isfinite(out.losses["flow"])
    out.losses["flow"].backward()
    assert model.encoder.to_latents.weight.grad is not None  # straight-through FSQ reaches the encoder
    assert all(p.grad is None for p in model.vae.parameters())  # the VAE is frozen
    model.zero_grad(set_to_none=True)


def test_save_load_round_trip(model, images, tmp_path):
    model.save_pretrained(tmp_path / "m")
    again = zoo.load(str(tmp_path / "m"))
    assert again.cfg == model.cfg
    assert torch.equal(again.encode(images).ids, model.encode(images).ids)
    t = model.encode(images)
    t.save(tmp_path / "t.tokens")
    assert torch.equal(zoo.Tokens.load(tmp_path / "t.tokens").ids, t.ids)


# -- converter vs the released layouts -----------------------------------------------------------
def _tsv(path):
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return {k: torch.empty(eval(s), device="meta") for k, s in rows}


def _need_fixture():
    if not FIXTURE.is_dir():
        if os.environ.get("ZOO_REQUIRE_PARITY") == "1":
            pytest.fail(f"FlexTok fixture folder missing at {FIXTURE}.")
        pytest.skip(f"FlexTok fixture folder not found at {FIXTURE}.")


VARIANT_OF = {
    "keys_full_flextok_d12_d12_in1k.tsv": "flextok-d12-d12-in1k",
    "keys_full_flextok_d18_d18_in1k.tsv": "flextok-d18-d18-in1k",
    "keys_full_flextok_d18_d28_in1k.tsv": "flextok-d18-d28-in1k",
    "keys_full_flextok_d18_d28_dfn.tsv": "flextok-d18-d28-dfn",
}


@pytest.mark.parametrize("name", sorted(VARIANT_OF))
def test_released_flextok_layouts_convert(name):
    _need_fixture()
    sd = _tsv(FIXTURE / name)
    # the released header holds the hydra config; here the VAE scaling factor comes as the VAE's config
    cfg = ft.from_official_config({"_class_name": "AutoencoderKL", "scaling_factor": 1.0, "norm_num_groups": 32}, sd, {})
    expected = registry.lookup(VARIANT_OF[name])[1].config
    assert cfg == dataclasses.replace(expected, vae_scaling_factor=1.0)
    with torch.device("meta"):
        m = ft.FlexTok(cfg)
    ours = ft.remap_state_dict(sd, cfg)
    hub.check_state_dict(m, ours, source=name)  # every key used, every tensor filled, shapes equal
    assert len(ours) == len(sd)


@pytest.mark.parametrize("channels", [4, 8, 16])
def test_released_vae_layouts(channels):
    _need_fixture()
    sd = _tsv(FIXTURE / f"keys_full_vae_c{channels}.tsv")
    cfg = dataclasses.replace(ft.FlexTokConfig(), vae_latent_channels=channels)
    with torch.device("meta"):
        vae = ft.build_vae(cfg)
    ours = {k[len("vae."):]: v for k, v in ft.remap_state_dict({"vae.vae." + k: v for k, v in sd.items()}, cfg).items()}
    hub.check_state_dict(vae, ours, source=f"vae c{channels}")


def test_unknown_and_training_only_keys():
    _need_fixture()
    sd = _tsv(FIXTURE / "keys_full_flextok_d12_d12_in1k.tsv")
    cfg = ft.from_official_config({"_class_name": "AutoencoderKL", "scaling_factor": 1.0}, sd, {})
    with torch.device("meta"):
        m = ft.FlexTok(cfg)
    extra = dict(sd, **{"vae.logvar": torch.empty((), device="meta")})
    hub.check_state_dict(m, ft.remap_state_dict(extra, cfg))  # documented training-only key: dropped
    bad = dict(sd, **{"decoder.module_dict.dec_repa_proj.weight": torch.empty(3, device="meta")})
    with pytest.raises(ValueError, match="dec_repa_proj"):
        hub.check_state_dict(m, ft.remap_state_dict(bad, cfg))
    missing = {k: v for k, v in sd.items() if "nested_dropout" not in k}
    with pytest.raises(ValueError, match="mask_token"):
        hub.check_state_dict(m, ft.remap_state_dict(missing, cfg))


def test_config_errors():
    with pytest.raises(ValueError, match="not recognised"):
        ft.from_official_config({"foo": 1}, {}, {})
    with pytest.raises(ValueError, match="not a FlexTok checkpoint"):
        ft.from_official_config(None, {"x": torch.zeros(1)}, {})
    with pytest.raises(ValueError, match="null_cond"):
        ft.FlexTokConfig(null_cond="none")


def test_mismatched_checkpoint_is_an_error(model, tmp_path):
    other = ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, dec_depth=1))
    other.save_pretrained(tmp_path / "o")
    cfgfile = tmp_path / "o" / "config.json"
    import json

    data = json.loads(cfgfile.read_text())
    data["config"]["dec_depth"] = 2
    cfgfile.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="missing keys"):
        zoo.load(str(tmp_path / "o"))


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x,err,match",
    [
        (torch.rand(3, 64, 64), ValueError, "batch"),
        (torch.rand(1, 1, 64, 64), ValueError, "RGB"),
        (torch.rand(1, 3, 60, 64), ValueError, "divisible by 16"),
        (torch.rand(1, 3, 128, 128), ValueError, "up to 64x64"),
        ((torch.rand(1, 3, 64, 64) * 255).to(torch.uint8), TypeError, "float"),
        (torch.full((1, 3, 64, 64), float("nan")), ValueError, "NaN"),
        (torch.rand(1, 3, 64, 64) * 2 - 1, ValueError, r"\[0, 1\]"),
        (torch.rand(0, 3, 64, 64), ValueError, "empty"),
        ("image.png", TypeError, "tensors"),
    ],
)
def test_bad_images(model, x, err, match):
    with pytest.raises(err, match=match):
        model.encode(x)


def test_bad_arguments(model, images):
    t = model.encode(images, num_tokens=4)
    for k in (0, 17, 2.5, True):
        with pytest.raises(ValueError, match="num_tokens"):
            model.encode(images, num_tokens=k)
    with pytest.raises(ValueError, match=r"\[0, 63999\]"):
        model.decode(zoo.Tokens(torch.full((1, 4), 64000)), steps=1)
    with pytest.raises(ValueError, match=r"\[0, 63999\]"):
        model.decode(zoo.Tokens(torch.full((1, 4), -1)), steps=1)
    with pytest.raises(ValueError, match="at most 16"):
        model.decode(zoo.Tokens(torch.zeros(1, 17, dtype=torch.long)), steps=1)
    with pytest.raises(ValueError, match="made by"):
        model.decode(zoo.Tokens(t.ids, meta={"family": "wavtokenizer"}), steps=1)
    with pytest.raises(ValueError, match="empty"):
        model.decode(zoo.Tokens(torch.zeros(1, 0, dtype=torch.long)), steps=1)
    with pytest.raises(ValueError, match="at least one token"):
        model.decode(zoo.Tokens(t.ids, lengths=torch.tensor([0, 4])), steps=1)
    with pytest.raises(ValueError, match="steps"):
        model.decode(t, steps=0)
    with pytest.raises(ValueError, match="noise"):
        model.decode(t, steps=1, noise=torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match="multiples of 16"):
        model.decode(t, steps=1, image_size=40)
    with pytest.raises(TypeError, match="zoo.Tokens"):
        model.decode(t.ids, steps=1)
    with pytest.raises(ValueError, match="1d"):
        model.decode(zoo.Tokens(torch.zeros(1, 2, 2, dtype=torch.long), layout="rvq"), steps=1)
    with pytest.raises(ValueError, match="timesteps"):
        model.velocity(torch.randn(2, 16, 8, 8), torch.tensor([1.5, 0.5]), t)
