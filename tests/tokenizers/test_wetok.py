"""WeTok: contract on the tiny config, joint ids, generative decoder, bad input, and the converter
against every released key layout (keys_full_*.tsv, built on the meta device)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import zoo
from tests.conftest import parity_dir
from zoo import Tokens, hub, registry
from zoo.tokenizers import wetok
from zoo.tokenizers.wetok import TINY_CONFIG, WeTok, WeTokConfig, from_official_config, remap_state_dict

# keys_full file -> catalogue name
RELEASED = {
    "keys_full_imagenet_downsample8.tsv": "wetok-imagenet-f8",
    "keys_full_imagenet_downsample16.tsv": "wetok-imagenet-f16",
    "keys_full_generaldomain_compratio24.tsv": "wetok-general-cr24",
    "keys_full_generaldomain_compratio48.tsv": "wetok-general-cr48",
    "keys_full_generaldomain_compratio192.tsv": "wetok-general-cr192",
    "keys_full_generaldomain_compratio768.tsv": "wetok-general-cr768-gd",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convs are 10-100x slower with 2 OpenMP threads on a loaded shared CPU; restore afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(cfg=TINY_CONFIG, seed=0) -> WeTok:
    torch.manual_seed(seed)
    model = WeTok(cfg).eval()
    with torch.no_grad():  # non-trivial norms so that every layer matters
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def tiny():
    return _model()


@pytest.fixture(scope="module")
def tiny_gd():
    return _model(dataclasses.replace(TINY_CONFIG, generative_decoder=True))


def _images(b=2, h=32, w=24, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# contract
# ----------------------------------------------------------------------------------------------
def test_contract_shapes_and_properties(tiny):
    x = _images()  # non-square on purpose
    t = tiny.encode(x)
    f, g = tiny.downsample_factor, TINY_CONFIG.num_groups
    assert f == 8 and tiny.num_codebooks == g and tiny.codebook_size == 2**TINY_CONFIG.bits_per_group
    assert t.layout == "2d" and t.ids.dtype == torch.int64
    assert tuple(t.ids.shape) == (2, g, 32 // f, 24 // f)
    assert int(t.ids.min()) >= 0 and int(t.ids.max()) < tiny.codebook_size
    assert t.meta["family"] == "wetok" and t.meta["image_size"] == [32, 24]
    assert tiny.token_rate == (TINY_CONFIG.image_size // f) ** 2
    assert tiny.input_size == (TINY_CONFIG.image_size, TINY_CONFIG.image_size)  # what file pipelines resize to
    y = tiny.decode(t)
    assert y.shape == x.shape and torch.isfinite(y).all() and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.equal(tiny.encode(x).ids, t.ids)  # deterministic in eval
    assert torch.equal(tiny.decode(t), y)
    xe, kw = tiny.example_input(2, torch.Generator().manual_seed(1))
    assert xe.shape == (2, 3, TINY_CONFIG.image_size, TINY_CONFIG.image_size) and kw == {}


def test_ids_are_sign_bits_lsb_first(tiny):
    """Channel g*d + j of the latent is bit j of group g's id (first channel = least significant)."""
    x = _images(1)
    h = tiny.encode_latent(x)  # [1, z, h, w]
    ids = tiny.encode(x).ids  # [1, G, h, w]
    d = TINY_CONFIG.bits_per_group
    bits = (h > 0).long().unflatten(1, (TINY_CONFIG.num_groups, d))  # [1, G, d, h, w]
    weights = (2 ** torch.arange(d))[None, None, :, None, None]
    assert torch.equal((bits * weights).sum(2), ids)
    codes = tiny.tokens_to_codes(tiny.encode(x))
    assert torch.equal(codes, torch.where(h > 0, 1.0, -1.0))


def test_save_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    assert isinstance(again, WeTok) and again.cfg == tiny.cfg
    x = _images(1)
    assert torch.equal(again.encode(x).ids, tiny.encode(x).ids)
    t = tiny.encode(x)
    t.save(tmp_path / "x.tokens")
    assert torch.allclose(again.decode(Tokens.load(tmp_path / "x.tokens")), tiny.decode(t))


def test_forward_training_losses_and_gradients():
    model = _model().train()
    out = model(_images(2, 16, 16))
    assert out.recon.shape == (2, 3, 16, 16)
    assert set(out.losses) == {"entropy", "commitment"}
    loss = (out.recon - 0.5).abs().mean() + sum(out.losses.values())
    loss.backward()
    assert model.encoder.conv_in.weight.grad is not None and model.encoder.conv_in.weight.grad.abs().sum() > 0
    # in eval, forward's recon (in [0, 1] space, unclamped) is what decode returns before clamping
    model.eval()
    x = _images(2, 16, 16)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out.recon.clamp(0, 1), model.decode(model.encode(x)), atol=1e-6, rtol=0)
    assert torch.equal(out.tokens.ids, model.encode(x).ids)


def test_catalogue():
    names = zoo.list_models("wetok*")
    assert set(RELEASED.values()) | {"wetok-tiny-f8"} == set(names)
    spec, v = registry.lookup("wetok-general-cr768-gd")
    assert v.config.generative_decoder and v.config.downsample_factor == 32
    assert v.pretrained.hub_id == "GrayShine/WeTok" and v.pretrained.filename == "GeneralDomain/compratio768/WeTok.ckpt"
    _, tiny_v = registry.lookup("wetok-tiny-f8")
    assert not tiny_v.official and tiny_v.embedded == "wetok/tiny-f8" and tiny_v.config.downsample_factor == 8


# ----------------------------------------------------------------------------------------------
# joint ids
# ----------------------------------------------------------------------------------------------
def test_joint_ids_round_trip(tiny):
    t = tiny.encode(_images())
    joint = tiny.joint_ids(t)
    assert joint.shape == (2, 4, 3) and joint.dtype == torch.int64
    d = TINY_CONFIG.bits_per_group
    assert torch.equal(joint, t.ids[:, 0] + (t.ids[:, 1] << d))  # group 0 holds the low bits
    assert torch.equal(tiny.split_joint_ids(joint), t.ids)
    # joint ids decode as Tokens [B, h, w] too
    assert torch.equal(tiny.decode(Tokens(joint, layout="2d", meta=t.meta)), tiny.decode(t))


def test_joint_ids_refused_past_63_bits():
    cfg = WeTokConfig(ch=32, ch_mult=(1, 1), num_res_blocks=1, z_channels=64, num_groups=8, bits_per_group=8, image_size=16)
    model = WeTok(cfg).eval()
    t = model.encode(torch.rand(1, 3, 16, 16))
    assert t.ids.shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match="63 bits"):
        model.joint_ids(t)
    with pytest.raises(ValueError, match="63 bits"):
        model.decode(Tokens(torch.zeros(1, 8, 8, dtype=torch.long), layout="2d"))


# ----------------------------------------------------------------------------------------------
# generative decoder
# ----------------------------------------------------------------------------------------------
def test_generative_decoder_noise(tiny_gd):
    t = tiny_gd.encode(_images())
    noise = torch.randn(2, TINY_CONFIG.z_channels, 4, 3, generator=torch.Generator().manual_seed(3))
    a = tiny_gd.decode(t, noise=noise)
    assert torch.equal(a, tiny_gd.decode(t, noise=noise))
    b = tiny_gd.decode(t, noise=torch.randn_like(noise))
    assert (a - b).abs().max() > 1e-4  # the noise is used
    g1 = tiny_gd.decode(t, generator=torch.Generator().manual_seed(5))
    g2 = tiny_gd.decode(t, generator=torch.Generator().manual_seed(5))
    assert torch.equal(g1, g2)
    # generator draws exactly torch.randn of the latent's shape
    same = tiny_gd.decode(t, noise=torch.randn(noise.shape, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(g1, same)


def test_generative_decoder_bad_noise(tiny_gd):
    t = tiny_gd.encode(_images())
    with pytest.raises(ValueError, match="noise of the quantized latent's shape"):
        tiny_gd.decode(t, noise=torch.randn(2, TINY_CONFIG.z_channels, 3, 4))
    with pytest.raises(ValueError, match="NaN"):
        tiny_gd.decode(t, noise=torch.full((2, TINY_CONFIG.z_channels, 4, 3), float("nan")))
    with pytest.raises(TypeError, match="float"):
        tiny_gd.decode(t, noise=torch.zeros(2, TINY_CONFIG.z_channels, 4, 3, dtype=torch.long))


def test_with_generative_decoder_starts_from_the_plain_model(tiny, tmp_path):
    gd = tiny.with_generative_decoder()
    assert gd.cfg.generative_decoder and not tiny.cfg.generative_decoder and not gd.training
    z = TINY_CONFIG.z_channels
    w = gd.decoder.conv_in.weight
    assert w.shape[1] == 2 * z and torch.equal(w[:, :z], tiny.decoder.conv_in.weight) and not w[:, z:].any()
    before, after = tiny.state_dict(), gd.state_dict()
    assert set(before) == set(after)
    assert all(torch.equal(before[k], after[k]) for k in before if k != "decoder.conv_in.weight")
    t = tiny.encode(_images())
    plain = tiny.decode(t)
    noise = torch.randn(2, z, 4, 3, generator=torch.Generator().manual_seed(1))
    # zero weights: the noise is ignored until trained (equal up to the conv's summation order)
    torch.testing.assert_close(gd.decode(t, noise=noise), plain, atol=1e-5, rtol=0)
    assert torch.equal(gd.encode(_images()).ids, t.ids)
    gd.decoder.conv_in.weight.data[:, z:] = 0.1  # once trained, the noise channels matter
    assert (gd.decode(t, noise=noise) - plain).abs().max() > 1e-4
    gd.save_pretrained(tmp_path / "gd")  # a folder finetune_decoder.py can start from
    assert zoo.load(tmp_path / "gd").cfg.generative_decoder
    with pytest.raises(ValueError, match="already has the generative decoder"):
        gd.with_generative_decoder()


def test_plain_decoder_rejects_noise(tiny):
    t = tiny.encode(_images())
    with pytest.raises(ValueError, match="takes no noise"):
        tiny.decode(t, noise=torch.randn(2, TINY_CONFIG.z_channels, 4, 3))


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, err, match",
    [
        (torch.rand(3, 64, 64), ValueError, "batch"),
        (torch.rand(1, 1, 64, 64), ValueError, "RGB"),
        (torch.rand(1, 4, 64, 64), ValueError, "RGB"),
        (torch.rand(1, 3, 60, 64), ValueError, "divisible by 8"),
        (torch.rand(1, 3, 64, 36), ValueError, "divisible by 8"),
        (torch.rand(0, 3, 64, 64), ValueError, "empty"),
        ((torch.rand(1, 3, 64, 64) * 255).byte(), TypeError, "float"),
        (torch.full((1, 3, 64, 64), float("nan")), ValueError, "NaN"),
        (torch.rand(1, 3, 64, 64) * 2 - 1, ValueError, r"\[0, 1\]"),
        (torch.rand(1, 3, 8, 8), ValueError, "at least 2 latent positions"),
        ([[0.0]], TypeError, "image tensors"),
    ],
)
def test_bad_images(tiny, x, err, match):
    with pytest.raises(err, match=match):
        tiny.encode(x)


def test_bad_tokens(tiny):
    t = tiny.encode(_images())
    bad = t.ids.clone()
    bad[0, 0, 0, 0] = tiny.codebook_size
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        tiny.decode(Tokens(bad, layout="2d"))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        tiny.decode(Tokens(t.ids - 1 - t.ids, layout="2d"))
    with pytest.raises(ValueError, match="one id per group"):
        tiny.decode(Tokens(t.ids[:, :1], layout="2d"))
    with pytest.raises(ValueError, match="layout '2d'"):
        tiny.decode(Tokens(t.ids.flatten(1), layout="1d"))
    with pytest.raises(ValueError, match="'other' tokenizer"):
        tiny.decode(Tokens(t.ids, layout="2d", meta={"family": "other"}))
    with pytest.raises(TypeError, match="zoo.Tokens"):
        tiny.decode(t.ids)
    with pytest.raises(ValueError, match="empty"):
        tiny.decode(Tokens(t.ids[:, :, :0], layout="2d"))
    with pytest.raises(ValueError, match="at least 2 latent positions"):
        tiny.decode(Tokens(t.ids[:, :, :1, :1], layout="2d"))
    with pytest.raises(ValueError, match="Joint ids must lie"):
        tiny.decode(Tokens(torch.full((1, 2, 2), 2**16), layout="2d"))


def test_bad_configs():
    with pytest.raises(ValueError, match="num_groups \\* bits_per_group"):
        WeTokConfig(z_channels=30)
    with pytest.raises(ValueError, match="multiple of 32"):
        WeTokConfig(ch=48)
    with pytest.raises(ValueError, match="divisible by the downsampling factor"):
        WeTokConfig(image_size=100)
    with pytest.raises(ValueError, match="no field"):
        WeTok.config_from_dict({"ch": 32, "nope": 1})


# ----------------------------------------------------------------------------------------------
# converter
# ----------------------------------------------------------------------------------------------
def _official_state_dict(model: WeTok, with_ema=True, extra_loss=True) -> dict[str, torch.Tensor]:
    """Our weights in the official layout: live keys perturbed, EMA twins = our weights."""
    sd = {}
    for name, p in model.named_parameters():
        sd[name] = p.detach() + 1.0  # live training weights: must NOT be used when EMA exists
        if with_ema:
            sd["model_ema." + name.replace(".", "")] = p.detach().clone()
    sd["model_ema.decay"] = torch.tensor(0.999)
    sd["model_ema.num_updates"] = torch.tensor(-1, dtype=torch.int32)
    if extra_loss:
        sd["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
        sd["loss.perceptual_loss.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
        sd["model_ema.lossdiscriminatormain0weight"] = torch.zeros(64, 3, 4, 4)
    return sd


def _init_args(cfg: WeTokConfig) -> dict:
    return {
        "ddconfig": {"double_z": False, "z_channels": cfg.z_channels, "resolution": 128, "in_channels": 3, "out_ch": 3,
                     "ch": cfg.ch, "ch_mult": list(cfg.ch_mult), "num_res_blocks": cfg.num_res_blocks},
        "lossconfig": {"target": "src.WeTok.modules.losses.vqperceptual.VQLPIPSWithDiscriminator"},
        "n_embed": 2**cfg.bits_per_group, "embed_dim": cfg.z_channels, "num_codebooks": cfg.num_groups,
        "sample_minimization_weight": 1.0, "batch_maximization_weight": 1.0, "use_ema": True,
        "gan_decoder": cfg.generative_decoder,
    }


def _official(cfg: WeTokConfig) -> WeTokConfig:
    """Official configs do not name a training resolution; the converter assumes 256."""
    return dataclasses.replace(cfg, image_size=256)


def test_convert_uses_ema_and_ignores_training_keys(tiny, tmp_path):
    from safetensors.torch import save_file

    sd = _official_state_dict(tiny)
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "w.safetensors")
    yaml_layout = {"model": {"class_path": "src.WeTok.models.lfqgan.VQModel", "init_args": _init_args(TINY_CONFIG)}}
    model = zoo.convert("wetok", checkpoint=tmp_path / "w.safetensors", config=yaml_layout)
    assert model.cfg == _official(TINY_CONFIG)
    for name, p in model.named_parameters():
        assert torch.equal(p, dict(tiny.named_parameters())[name]), name
    x = _images(1)
    assert torch.equal(model.encode(x).ids, tiny.encode(x).ids)
    # the released format: a Lightning pickle {"state_dict": ...}, no config on the hub (shapes decide)
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, tmp_path / "WeTok.ckpt")
    from_ckpt = zoo.convert("wetok", checkpoint=tmp_path / "WeTok.ckpt")
    assert from_ckpt.cfg == _official(TINY_CONFIG)  # 8 bits per group assumed, as every release
    assert torch.equal(from_ckpt.encode(x).ids, tiny.encode(x).ids)


def test_convert_falls_back_to_live_weights_with_warning(tiny):
    sd = {k: v for k, v in _official_state_dict(tiny).items() if not k.startswith("model_ema.encoder")}
    with pytest.warns(UserWarning, match="no EMA weights"):
        ours = remap_state_dict(sd, TINY_CONFIG)
    assert torch.equal(ours["encoder.conv_in.weight"], tiny.encoder.conv_in.weight + 1.0)  # live copy
    assert torch.equal(ours["decoder.conv_in.weight"], tiny.decoder.conv_in.weight)  # EMA copy
    hub.check_state_dict(WeTok(TINY_CONFIG), ours)


def test_convert_rejects_unknown_and_mismatched(tiny):
    sd = _official_state_dict(tiny)
    sd["encoder.extra.weight"] = torch.zeros(3)
    model = WeTok(TINY_CONFIG)
    with pytest.raises(ValueError, match="encoder.extra.weight"):
        hub.load_state_dict_strict(model, remap_state_dict(sd, TINY_CONFIG))
    sd = _official_state_dict(tiny)
    sd["model_ema.encoderextraweight"] = torch.zeros(3)
    with pytest.raises(ValueError, match="model_ema.encoderextraweight"):
        hub.load_state_dict_strict(model, remap_state_dict(sd, TINY_CONFIG))
    # a config whose architecture does not match the checkpoint
    other = dataclasses.replace(TINY_CONFIG, ch_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="No model section"):
        from_official_config({"model": {"init_args": _init_args(other)}}, _official_state_dict(tiny), {})
    with pytest.raises(ValueError, match="not a WeTok"):
        from_official_config(None, {"foo.weight": torch.zeros(1)}, {})
    with pytest.raises(ValueError, match="no model section"):
        from_official_config({"trainer": {}}, _official_state_dict(tiny), {})
    bad = _init_args(TINY_CONFIG)
    bad["n_embed"] = 200
    with pytest.raises(ValueError, match="power of two"):
        from_official_config(bad, _official_state_dict(tiny), {})


def test_convert_picks_the_section_that_matches(tiny, tiny_gd):
    cfg = {"model": {"init_args": _init_args(TINY_CONFIG)}, "model_gd": {"init_args": _init_args(tiny_gd.cfg)}}
    assert from_official_config(cfg, _official_state_dict(tiny), {}) == _official(TINY_CONFIG)
    assert from_official_config(cfg, _official_state_dict(tiny_gd), {}) == _official(tiny_gd.cfg)
    assert from_official_config(_init_args(TINY_CONFIG), _official_state_dict(tiny), {}) == _official(TINY_CONFIG)


def _read_keys(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            out[key] = tuple(ast.literal_eval(shape))
    return out


@pytest.mark.parametrize("fname", sorted(RELEASED))
def test_released_layouts_load(fname):
    keys = _read_keys(parity_dir("wetok") / fname)
    sd = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    cfg = from_official_config(None, sd, {})  # what zoo.load does: no config ships on the hub
    _, variant = registry.lookup(RELEASED[fname])
    assert cfg == variant.config
    ours = remap_state_dict(sd, cfg)
    with torch.device("meta"):
        model = WeTok(cfg)
    hub.check_state_dict(model, ours, source=fname)  # every parameter filled, shapes equal, nothing unknown
    for name in ours:  # every inference weight came from its EMA twin
        assert ours[name] is sd["model_ema." + name.replace(".", "")], name
    ignored = set(keys) - {"model_ema." + n.replace(".", "") for n in ours} - set(ours)
    assert all(k.startswith(("loss.", "model_ema.loss")) or k in wetok.IGNORED_KEYS or k in ours
               or "model_ema." + k.replace(".", "") in keys for k in ignored)


def test_runs_in_bfloat16():
    model = _model(dataclasses.replace(TINY_CONFIG, generative_decoder=True)).to(torch.bfloat16)
    x = _images()
    t = model.encode(x)
    y = model.decode(t, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32 and y.shape == x.shape and torch.isfinite(y).all()
    assert model.encode_latent(x).dtype == torch.float32
