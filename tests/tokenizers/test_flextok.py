"""FlexTok: contract on the tiny config, converter against every released key layout, bad input."""

import dataclasses
from pathlib import Path

import pytest
import torch

import zoo
from tests.conftest import parity_dir
from zoo import hub, registry
from zoo.tokenizers import flextok as ft

REPO = Path(__file__).resolve().parents[2]


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


VARIANT_OF = {
    "keys_full_flextok_d12_d12_in1k.tsv": "flextok-d12-d12-in1k",
    "keys_full_flextok_d18_d18_in1k.tsv": "flextok-d18-d18-in1k",
    "keys_full_flextok_d18_d28_in1k.tsv": "flextok-d18-d28-in1k",
    "keys_full_flextok_d18_d28_dfn.tsv": "flextok-d18-d28-dfn",
}


@pytest.mark.parametrize("name", sorted(VARIANT_OF))
def test_released_flextok_layouts_convert(name):
    sd = _tsv(parity_dir("flextok") / name)
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
def test_released_vae_layouts_inside_flextok(channels):
    """A FlexTok's vae_* fields build each released VAE's layout (the standalone entries: test_flextok_vae.py)."""
    sd = _tsv(parity_dir("flextok") / f"keys_full_vae_c{channels}.tsv")
    cfg = dataclasses.replace(ft.FlexTokConfig(), vae_latent_channels=channels)
    with torch.device("meta"):
        vae = ft.build_vae(cfg.vae_config)
    ours = {k[len("vae."):]: v for k, v in ft.remap_state_dict({"vae.vae." + k: v for k, v in sd.items()}, cfg).items()}
    hub.check_state_dict(vae, ours, source=f"vae c{channels}")


@pytest.mark.parametrize("channels", [4, 8, 16])
def test_flextok_on_each_released_vae_converts(channels):
    """A FlexTok trained on the standalone c4 / c8 / c16 VAE (d12 layout, patch widths C * 2 * 2)
    converts: the converter reads the latent channels from the VAE keys and every key is used."""
    sd = {k: v for k, v in _tsv(parity_dir("flextok") / "keys_full_flextok_d12_d12_in1k.tsv").items()
          if not k.startswith("vae.vae.")}
    sd.update({"vae.vae." + k: v for k, v in _tsv(parity_dir("flextok") / f"keys_full_vae_c{channels}.tsv").items()})
    p = channels * 2 * 2  # one 2x2 latent patch
    for k in ("encoder.module_dict.enc_patch_emb.patch_proj.weight", "decoder.module_dict.dec_noise_patch_emb.patch_proj.weight"):
        sd[k] = torch.empty(768, p, device="meta")
    sd["decoder.module_dict.dec_to_patches.proj.weight"] = torch.empty(p, 768, device="meta")
    sd["decoder.module_dict.dec_to_patches.proj.bias"] = torch.empty(p, device="meta")
    cfg = ft.from_official_config({"_class_name": "AutoencoderKL", "scaling_factor": 1.0, "norm_num_groups": 32}, sd, {})
    assert cfg.vae_latent_channels == channels and cfg.patch_size == 2 and cfg.image_size == 256
    with torch.device("meta"):
        m = ft.FlexTok(cfg)
    hub.check_state_dict(m, ft.remap_state_dict(sd, cfg), source=f"d12 on vae c{channels}")


def test_unknown_and_training_only_keys():
    sd = _tsv(parity_dir("flextok") / "keys_full_flextok_d12_d12_in1k.tsv")
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


# -- training: flow_forward (train_flow_decoder.py agreement), nested / condition dropout, REPA -----
def test_flow_forward_agreement(model, images):
    from zoo.api import FlowOutput

    shape = model.flow_noise_shape(images)
    assert shape == (2, 16, 8, 8)  # the VAE latent, not the image
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.25, 0.8])
    out = model.flow_forward(images, t=t, noise=noise, keep=torch.tensor([3, 16]))  # eval: no condition dropout
    assert isinstance(out, FlowOutput) and out.velocity.shape == out.target.shape == shape
    x0 = model.vae_encode(images * 2 - 1)
    assert torch.allclose(out.target, noise - x0, atol=1e-6)  # upstream: x_t = t eps + (1 - t) x0, v = eps - x0
    assert out.tokens.lengths.tolist() == [3, 16] and torch.equal(out.tokens.ids, model.encode(images).ids)
    # the training velocity is the decoder's velocity at x_t given the kept prefix
    x_t = t[:, None, None, None] * noise + (1 - t[:, None, None, None]) * x0
    assert torch.allclose(out.velocity, model.velocity(x_t, t, out.tokens), atol=1e-5)
    with pytest.raises(ValueError, match="latent's shape"):
        model.flow_forward(images, t=t, noise=torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="one per image"):
        model.flow_forward(images, t=torch.rand(3), noise=noise)


def test_nested_dropout_is_the_shared_module_with_powers_of_two(model, images):
    from zoo.quantizers.dropout import NestedDropout

    nd = model.decoder.nested_dropout
    assert isinstance(nd, NestedDropout) and nd.mode == "pow2"
    assert set(nd.sample_keep(400, torch.Generator().manual_seed(0)).tolist()) == {1, 2, 4, 8, 16}
    noise = torch.randn(model.flow_noise_shape(images))
    keeps = {tuple(model.flow_forward(images, t=torch.full((2,), 0.5), noise=noise).tokens.lengths.tolist()) for _ in range(3)}
    assert len(keeps) > 1 and all(k in (1, 2, 4, 8, 16) for ks in keeps for k in ks)  # drawn per sample
    m = ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, nested_dropout_mode="uniform"))
    assert m.decoder.nested_dropout.mode == "uniform"


def test_condition_dropout_uses_the_null_condition(model, images):
    regs = torch.randn(3, 16, 64)
    out = model.decoder.uncondition(regs, torch.tensor([True, False, True]))
    assert torch.equal(out[1], regs[1])
    assert torch.equal(out[0], model.decoder.null_cond.expand(16, 64)) and torch.equal(out[2], out[0])
    # in train mode a sample's registers are dropped with probability cond_dropout_prob
    noise = torch.randn(model.flow_noise_shape(images), generator=torch.Generator().manual_seed(1))
    t, keep = torch.full((2,), 0.5), torch.tensor([16, 16])
    cond = model.flow_forward(images, t=t, noise=noise, keep=keep).velocity
    x0 = model.vae_encode(images * 2 - 1)
    x_t = 0.5 * noise + 0.5 * x0
    uncond = model.velocity(x_t, t, model.encode(images), cond=False)
    seen = set()
    model.train()
    try:
        for seed in range(5):  # seeded: these draws drop some samples and keep others
            v = model.flow_forward(images, t=t, noise=noise, keep=keep, generator=torch.Generator().manual_seed(seed)).velocity
            for i in range(2):
                dropped = torch.allclose(v[i], uncond[i], atol=1e-5)
                assert dropped or torch.allclose(v[i], cond[i], atol=1e-5)
                seen.add(dropped)
    finally:
        model.eval()
    assert seen == {True, False}


class _SmallEncoder(torch.nn.Module):
    """A locally built frozen feature encoder: 8x8 patches -> 24 features on an 8x8 grid (REPA target)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 24, 8, stride=8)

    def forward(self, x):
        return self.proj(x)  # [B, 24, H/8, W/8]


def test_repa_with_a_local_encoder(images, tmp_path):
    from zoo.train.flextok import repa_encoder

    cfg = dataclasses.replace(ft.TINY_CONFIG, repa_encoder="custom", repa_dim=24, repa_hidden=32, repa_layer=0)
    torch.manual_seed(0)
    m = ft.FlexTok(cfg).train()
    noise = torch.randn(m.flow_noise_shape(images))
    with pytest.raises(ValueError, match="repa_encoder='custom' needs your frozen feature encoder"):
        repa_encoder(m)
    assert "repa" not in m.flow_forward(images, t=torch.full((2,), 0.5), noise=noise).losses  # no target, no term
    enc = repa_encoder(m, _SmallEncoder())
    with torch.no_grad():
        target = enc(images)
    out = m.flow_forward(images, t=torch.full((2,), 0.5), noise=noise, repa_target=target)
    assert set(out.losses) == {"repa"} and 0 < out.losses["repa"].item() < 2
    out.losses["repa"].backward()
    assert m.repa_projector[0].weight.grad is not None
    assert m.decoder.blocks[0].attn.wq.weight.grad is not None  # the aligned block and those before it learn
    assert m.decoder.blocks[1].attn.wq.weight.grad is None  # blocks after the tap get nothing from REPA
    assert m.encoder.to_latents.weight.grad is not None  # through the registers and straight-through FSQ
    assert enc.proj.weight.grad is None and not enc.proj.weight.requires_grad and not enc.training  # frozen
    keys = m.state_dict().keys()
    assert any(k.startswith("repa_projector.") for k in keys) and not any("proj.weight" == k.split("repa")[-1] for k in keys)
    assert not any(k.startswith("_repa") for k in keys)
    m.save_pretrained(tmp_path / "r")  # the projector is saved; the encoder is not
    again = zoo.load(str(tmp_path / "r"))
    assert again.cfg == cfg and torch.equal(again.repa_projector[0].weight, m.repa_projector[0].weight)
    off = ft.FlexTok(ft.TINY_CONFIG)
    with pytest.raises(ValueError, match="REPA off"):
        repa_encoder(off, _SmallEncoder())
    with pytest.raises(ValueError, match="REPA off"):
        off.flow_forward(images, t=torch.full((2,), 0.5), noise=noise, repa_target=target)
    assert repa_encoder(off) is None


def test_repa_helpers():
    from zoo.blocks.repa import align_to_grid, repa_loss

    f = torch.randn(2, 16, 5)
    assert torch.equal(align_to_grid(f, 4, 4), f)
    assert align_to_grid(f, 2, 2).shape == (2, 4, 5) and align_to_grid(torch.randn(2, 5, 8, 8), 4, 4).shape == (2, 16, 5)
    assert float(repa_loss(f, 3 * f)) == pytest.approx(0.0, abs=1e-6) and float(repa_loss(f, -f)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="square"):
        align_to_grid(torch.randn(2, 15, 5), 4, 4)
    with pytest.raises(ValueError, match="differ"):
        repa_loss(f, torch.randn(2, 16, 6))


def test_pixel_space_variant(images):
    cfg = dataclasses.replace(ft.TINY_CONFIG, latent_space="pixels", patch_size=8)
    m = ft.FlexTok(cfg).eval()
    assert m.vae is None and m.latent_factor == 8 and m.flow_noise_shape(images) == (2, 3, 64, 64)
    t = m.encode(images, num_tokens=4)
    assert t.ids.shape == (2, 4)
    assert m.decode(t, steps=2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 64, 64)
    noise = torch.randn(2, 3, 64, 64)
    out = m.flow_forward(images, t=torch.full((2,), 0.3), noise=noise)
    assert torch.allclose(out.target, noise - (images * 2 - 1))  # the flow runs on [-1, 1] pixels
    assert out.velocity.shape == (2, 3, 64, 64)


def test_training_config_errors():
    with pytest.raises(ValueError, match="latent_space"):
        ft.FlexTokConfig(latent_space="rgb")
    with pytest.raises(ValueError, match="nested_dropout_mode"):
        ft.FlexTokConfig(nested_dropout_mode="linear")
    with pytest.raises(ValueError, match="cond_dropout_prob"):
        ft.FlexTokConfig(cond_dropout_prob=1.0)
    with pytest.raises(ValueError, match="repa_dim"):
        ft.FlexTokConfig(repa_encoder="vit_large_patch14_dinov2.lvd142m")
    with pytest.raises(ValueError, match="repa_layer"):
        ft.FlexTokConfig(repa_encoder="custom", repa_dim=8, repa_layer=28)


def test_official_training_settings_are_read():
    import json

    from safetensors.torch import load_file

    d = parity_dir("flextok")
    cfg = ft.from_official_config(json.loads((d / "config.json").read_text()), load_file(str(d / "weights.safetensors")))
    assert cfg.nested_dropout_mode == "uniform" and cfg.cond_dropout_prob == 0.2  # the fixture's MaskedNestedDropout / LearnedNullCond


def test_vae_init_fills_the_vae_and_is_not_saved(tmp_path):
    torch.manual_seed(5)
    donor = ft.build_vae(ft.TINY_CONFIG.vae_config)
    donor.save_pretrained(tmp_path / "vae")  # a diffusers AutoencoderKL folder, as released VAEs are
    m = ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_init=str(tmp_path / "vae")))
    assert all(torch.equal(a, b) for a, b in zip(m.vae.state_dict().values(), donor.state_dict().values()))
    assert m.config_dict()["vae_init"] == ""  # the saved weights carry the VAE
    with pytest.raises(ValueError, match="has 16 latent channels; the config says vae_latent_channels=4"):
        ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_latent_channels=4, vae_init=str(tmp_path / "vae")))
    with pytest.raises(ValueError, match="does not match AutoencoderKL"):  # the shared strict checker names the keys
        ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_layers_per_block=2, vae_init=str(tmp_path / "vae")))
    with pytest.raises(ValueError, match="scaling_factor 0.5"):
        ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_scaling_factor=0.13, vae_init=str(tmp_path / "vae")))


def test_tiny_cpu_recipe_builds_the_catalogue_variant():
    from zoo.train.recipe import load_yaml

    recipe = load_yaml(REPO / "recipes" / "flextok" / "tiny-cpu.yaml")
    cfg = ft.FlexTok.config_from_dict(recipe["model"]["config"])
    assert cfg == registry.lookup("flextok-tiny-64")[1].config
    folder = REPO / "models" / "flextok" / "tiny-64"
    if (folder / "config.json").is_file():  # the embedded default, trained with that recipe
        tok = zoo.load("flextok-tiny-64")
        assert tok.cfg == cfg and tok.variant == "flextok-tiny-64"
        ids = tok.encode(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), num_tokens=4).ids
        assert ids.shape == (1, 4)


# -- fewest tokens for a target quality ------------------------------------------------------------
def test_target_psnr_extremes_and_bad_values(model, images):
    assert model.encode(images, target_psnr=1e6).lengths.tolist() == [16, 16]  # unreachable -> all tokens
    assert model.encode(images, target_psnr=-1e6).lengths.tolist() == [1, 1]
    got = model.encode(images, num_tokens=4, target_psnr=1e6)
    assert got.ids.shape == (2, 4) and got.lengths.tolist() == [4, 4]
    for p in (float("nan"), "30", True):
        with pytest.raises(ValueError, match="target_psnr"):
            model.encode(images, target_psnr=p)
