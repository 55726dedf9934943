"""FlexTok's standalone VAEs (flextok-vae-c4 / -c8 / -c16): catalogue entries of kind "vae", the released
key layouts, loading from a local folder and from the hub cache, encode / decode, the errors, vae_init by
catalogue name, and the CLI (reconstruct runs them, encode / decode refuse them)."""

import dataclasses
import json
import shutil

import pytest
import torch

import zoo
from tests.conftest import parity_dir
from zoo import api, cli, hub, registry
from zoo.tokenizers import flextok as ft

SCALE = 0.37
# the released structure (f8, four blocks, quant convs) at tiny widths; the loader reads sizes from config.json
TINY_C4 = ft.FlexTokVAEConfig(latent_channels=4, block_out_channels=(16, 32, 32, 32), layers_per_block=1,
                              norm_num_groups=8, scaling_factor=SCALE)


def _tsv(path):
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return {k: torch.empty(eval(s), device="meta") for k, s in rows}


def _release(folder, cfg=TINY_C4, seed=0):
    """A diffusers AutoencoderKL folder as the VAE repos hold it: config.json + diffusion_pytorch_model.safetensors."""
    torch.manual_seed(seed)
    donor = ft.build_vae(cfg).eval()
    donor.save_pretrained(folder)
    return donor


def _snapshot(cache, repo_id, release, revision="b" * 40):
    """Copy a release folder into huggingface_hub's cache layout (refs/main -> snapshots/<revision>/)."""
    base = cache / ("models--" + repo_id.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(revision)
    snap = base / "snapshots" / revision
    shutil.copytree(release, snap, dirs_exist_ok=True)
    return snap


def _edit_config(folder, **changes):
    data = json.loads((folder / "config.json").read_text())
    data.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del data[k]
    (folder / "config.json").write_text(json.dumps(data))


@pytest.fixture
def release(tmp_path):
    return _release(tmp_path / "flextok_vae_c4"), tmp_path / "flextok_vae_c4"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache that every download in the test (catalogue names, CLI, vae_init) reads."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


# -- catalogue -----------------------------------------------------------------------------------
def test_catalogue_entries():
    for c in (4, 8, 16):
        spec, v = registry.lookup(f"flextok-vae-c{c}")
        assert v.kind == "vae" and registry.model_class(spec, v) is ft.FlexTokVAE and v.config.latent_channels == c
        pre = v.pretrained
        assert (pre.hub_id, pre.filename, pre.config_filename) == (
            f"EPFL-VILAB/flextok_vae_c{c}", "diffusion_pytorch_model.safetensors", "config.json")
        assert v.config.scaling_factor is None  # read from the release's config.json, never assumed
        assert v.name in registry.NOT_YET_PINNED and pre.revision is None  # no commit of these repos seen
    assert not issubclass(ft.FlexTokVAE, api.Tokenizer) and issubclass(ft.FlexTokVAE, api.Model)
    with pytest.raises(ValueError, match="kind"):
        registry.Variant(name="x", config=None, kind="latent")


@pytest.mark.parametrize("channels", [4, 8, 16])
def test_catalogue_vae_builds_the_released_layout(channels):
    sd = _tsv(parity_dir("flextok") / f"keys_full_vae_c{channels}.tsv")
    spec, v = registry.lookup(f"flextok-vae-c{channels}")
    with torch.device("meta"):
        model = registry.model_class(spec, v)(v.config)
    hub.check_state_dict(model.vae, sd, source=f"keys_full_vae_c{channels}.tsv")  # every key, every shape
    assert model.latent_channels == channels and model.downsample_factor == 8


# -- loading -------------------------------------------------------------------------------------
def test_local_folder_loads_and_round_trips(release):
    donor, folder = release
    m = zoo.load(str(folder))
    assert isinstance(m, ft.FlexTokVAE) and m.variant is None and not m.training and m.cfg == dataclasses.replace(TINY_C4, image_size=256)
    for k, v in donor.state_dict().items():
        assert torch.equal(m.vae.state_dict()[k], v), k
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    z = m.encode(x)
    assert z.shape == (2, 4, 4, 6) and z.dtype == torch.float32 and z.is_inference()
    with torch.no_grad():
        mode = donor.encode(x * 2 - 1).latent_dist.mode()
        assert torch.allclose(z, mode * SCALE, atol=1e-6)  # the posterior mode, scaled by the released factor
        ref = (donor.decode(mode).sample.clamp(-1, 1) + 1) / 2
    y = m.decode(z)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and torch.allclose(y, ref, atol=1e-5)
    assert torch.equal(m.reconstruct(x), y) and torch.equal(m(x), y) and torch.equal(m.encode(x), z)  # deterministic
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    s = m.encode(x, sample=True, generator=g())
    assert torch.equal(s, m.encode(x, sample=True, generator=g())) and not torch.allclose(s, z)


def test_hub_cache_snapshot_loads_by_name(release, tmp_path):
    _, folder = release
    cache = tmp_path / "cache"
    _snapshot(cache, "EPFL-VILAB/flextok_vae_c4", folder)
    m = zoo.load("flextok-vae-c4", cache_dir=str(cache), device="cpu", precision="bf16")
    assert isinstance(m, ft.FlexTokVAE) and m.variant == "flextok-vae-c4" and m.precision == "bf16"
    assert m.cfg.scaling_factor == SCALE
    z = m.encode(torch.rand(1, 3, 16, 16))
    assert z.shape == (1, 4, 2, 2) and z.dtype == torch.float32  # media come back fp32
    assert m.decode(z).shape == (1, 3, 16, 16)
    assert not (cache / "zoo-converted").exists()  # read as released: no second copy


# -- errors --------------------------------------------------------------------------------------
def test_wrong_channels_scaling_factor_and_layout_are_errors(release, tmp_path):
    _, folder = release
    cache = tmp_path / "cache"
    _snapshot(cache, "EPFL-VILAB/flextok_vae_c8", folder)  # a c4 release where the c8 entry looks
    with pytest.raises(ValueError, match="4 latent channels; this entry has 8"):
        zoo.load("flextok-vae-c8", cache_dir=str(cache))
    for bad in (None, 0.0, -1.0, "0.13", float("nan")):
        _edit_config(folder, scaling_factor=bad)
        with pytest.raises(ValueError, match="scaling_factor"):
            zoo.load(str(folder))
    _edit_config(folder, scaling_factor=SCALE, shift_factor=0.1)
    with pytest.raises(ValueError, match="shift_factor"):
        zoo.load(str(folder))
    _edit_config(folder, shift_factor=None, down_block_types=["DownBlock2D"] * 4)
    with pytest.raises(ValueError, match="down_block_types"):
        zoo.load(str(folder))
    _edit_config(folder, down_block_types=["DownEncoderBlock2D"] * 4, layers_per_block=2)
    with pytest.raises(ValueError, match="missing keys"):  # config.json and weights disagree: the strict check
        zoo.load(str(folder))


def test_missing_config_and_corrupt_weights_are_errors(release, tmp_path):
    _, folder = release
    cache = tmp_path / "cache"
    snap = _snapshot(cache, "EPFL-VILAB/flextok_vae_c4", folder)
    (snap / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json from hub repo EPFL-VILAB/flextok_vae_c4"):
        zoo.load("flextok-vae-c4", cache_dir=str(cache))
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        zoo.load(str(folder))


def test_bad_inputs(release):
    m = zoo.load(str(release[1]))
    with pytest.raises(ValueError, match="divisible by 8"):
        m.encode(torch.rand(1, 3, 20, 16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.encode(torch.rand(1, 3, 16, 16) * 2)
    with pytest.raises(ValueError, match=r"latents \[B, 4, h, w\]"):
        m.decode(torch.rand(1, 8, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        m.decode(torch.full((1, 4, 2, 2), float("nan")))
    with torch.device("meta"):
        unloaded = ft.FlexTokVAE(registry.lookup("flextok-vae-c4")[1].config)
    with pytest.raises(ValueError, match="without a scaling factor"):
        unloaded.scaling_factor


# -- vae_init by catalogue name -----------------------------------------------------------------
def test_vae_init_takes_a_catalogue_name(tmp_path, hub_cache):
    assert ft.convert._vae_entry("flextok-vae-c16") == ft.convert._vae_entry("EPFL-VILAB/flextok_vae_c16") == "flextok-vae-c16"
    cfg = dataclasses.replace(ft.TINY_CONFIG.vae_config, scaling_factor=ft.TINY_CONFIG.vae_scaling_factor)
    donor = _release(tmp_path / "c16", cfg, seed=5)
    _snapshot(hub_cache, "EPFL-VILAB/flextok_vae_c16", tmp_path / "c16")
    for source in ("flextok-vae-c16", "EPFL-VILAB/flextok_vae_c16"):  # the name and the hub id: one repo
        m = ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_init=source))
        assert all(torch.equal(a, b) for a, b in zip(m.vae.state_dict().values(), donor.state_dict().values()))
    with pytest.raises(ValueError, match="scaling_factor 0.5; the config says vae_scaling_factor=0.13"):
        ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_scaling_factor=0.13, vae_init="flextok-vae-c16"))
    _release(tmp_path / "c4")
    _snapshot(hub_cache, "EPFL-VILAB/flextok_vae_c4", tmp_path / "c4")
    with pytest.raises(ValueError, match="has 4 latent channels; the config says vae_latent_channels=16"):
        ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_init="flextok-vae-c4"))
    with pytest.raises(ValueError, match="could not load a released VAE"):
        ft.FlexTok(dataclasses.replace(ft.TINY_CONFIG, vae_init="flextok-vae-c8"))  # not in the cache


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_lists_reconstructs_and_refuses_tokens(release, hub_cache, tmp_path, capsys):
    from zoo import media

    _snapshot(hub_cache, "EPFL-VILAB/flextok_vae_c4", release[1])
    assert cli.main(["list", "flextok-vae*"]) == 0
    out = capsys.readouterr().out
    assert "flextok-vae-c4" in out and " vae " in out and "latents, no token ids" in out
    assert cli.main(["info", "flextok-vae-c16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "vae" and info["latent_channels"] == 16 and "codebook_size" not in info
    media.save_media(tmp_path / "img", torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0)), "image")
    rc = cli.main(["reconstruct", "flextok-vae-c4", str(tmp_path / "img.png"), "--out", str(tmp_path / "rec"),
                   "--metrics", "--device", "cpu", "-q"])
    assert rc == 0
    row = json.loads((tmp_path / "rec" / "metrics.json").read_text())[0]
    assert row["latent_shape"] == [4, 32, 32] and "psnr_db" in row and (tmp_path / "rec" / "img.png").is_file()
    for cmd in (["encode", "flextok-vae-c4", str(tmp_path / "img.png")], ["decode", "flextok-vae-c4", str(tmp_path / "x.tokens")],
                ["encode", str(release[1]), str(tmp_path / "img.png")]):  # by name before loading, a folder by type
        with pytest.raises(SystemExit) as e:
            cli.main([*cmd, "--out", str(tmp_path / "t")])
        msg = str(e.value)
        assert "\n" not in msg and "continuous latents, not token ids" in msg and "zoo reconstruct" in msg


def test_scaling_factor_from_the_vae_repo_reads_the_pinned_revision(tmp_path, monkeypatch):
    """A FlexTok checkpoint that leaves the scaling factor to its VAE repo: config.json is read at the revision
    the catalogue entry of that VAE pins, not at `main`."""
    import huggingface_hub

    from zoo.tokenizers.flextok import convert

    spec, variant = registry.lookup("flextok-vae-c16")
    pinned = dataclasses.replace(variant, pretrained=dataclasses.replace(variant.pretrained, revision="c" * 40))
    real_lookup = registry.lookup
    monkeypatch.setattr(registry, "lookup", lambda n: (spec, pinned) if n == "flextok-vae-c16" else real_lookup(n))
    (tmp_path / "config.json").write_text(json.dumps({"scaling_factor": 0.75}))
    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name, revision=None: asked.append((repo, name, revision)) or str(tmp_path / name))
    assert convert._hub_vae_scaling_factor("EPFL-VILAB/flextok_vae_c16") == 0.75
    assert asked == [("EPFL-VILAB/flextok_vae_c16", "config.json", "c" * 40)]
