"""One-D-Piece: contract, prefixes, target PSNR, converter (released layouts on the meta device), bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from tests.conftest import parity_dir, parity_files
from zoo import hub
from zoo.api import Tokens
from zoo.tokenizers import one_d_piece as odp

KEY_FILES = parity_files("one_d_piece")
RELEASED = {"keys_full_s256.tsv": odp.S_256, "keys_full_b256.tsv": odp.B_256, "keys_full_l256.tsv": odp.L_256}

# The official S-256 config (configs/one-d-piece_s256.yaml), model and dataset sections as released.
OFFICIAL_S256_YAML = {
    "model": {"type": "one_d_piece", "vq_model": {
        "codebook_size": 4096, "token_size": 12, "use_l2_norm": True, "commitment_cost": 0.25,
        "vit_enc_model_size": "small", "vit_dec_model_size": "small", "vit_enc_patch_size": 16,
        "vit_dec_patch_size": 16, "num_latent_tokens": 256, "finetune_decoder": True,
        "strict_length_assertion": False}},
    "dataset": {"preprocessing": {"resize_shorter_edge": 256, "crop_size": 256, "random_crop": False}},
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = odp.OneDPiece(odp.TINY_TEST).eval()
    with torch.no_grad():  # make the random model depend on its input (as the parity fixture does)
        for name, p in m.named_parameters():
            if p.dim() >= 2 and "embedding" not in name and "codebook" not in name:
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
    return m


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------------------- contract
def test_registry_and_properties(model):
    assert set(zoo.list_models("one-d-piece*")) == {
        "one-d-piece-s-256", "one-d-piece-b-256", "one-d-piece-l-256", "one-d-piece-tiny-64"}
    assert model.codebook_size == 64 and model.num_codebooks == 1 and model.token_rate == 8.0
    assert model.modality == "image" and model.family == "one_d_piece"
    x, kwargs = model.example_input(2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and kwargs == {}


def test_encode_decode_shapes_and_determinism(model, images):
    t = model.encode(images)
    assert t.layout == "1d" and t.ids.dtype == torch.int64 and t.ids.shape == (3, 8) and t.lengths is None
    assert 0 <= int(t.ids.min()) and int(t.ids.max()) < 64
    assert t.meta["family"] == "one_d_piece" and t.meta["image_size"] == [32, 32]
    assert torch.equal(t.ids, model.encode(images).ids)
    out = model.decode(t)
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, out.clamp(0, 1)) and not torch.equal(model.decode(t, clamp=False).clamp(0, 1), model.decode(t, clamp=False))


def test_every_prefix_decodes_and_differs(model, images):
    t = model.encode(images)
    outs = [model.decode(t[:, :k]) for k in range(1, 9)]
    assert all(o.shape == images.shape for o in outs)
    assert not torch.allclose(outs[0], outs[-1])
    assert torch.equal(model.encode(images, num_tokens=3).ids, t.ids[:, :3])


def test_masked_batch_decode_equals_per_item_prefixes(model, images):
    t = model.encode(images)
    lengths = torch.tensor([2, 8, 5])
    batched = model.decode(Tokens(t.ids, layout="1d", lengths=lengths, meta=t.meta), clamp=False)
    for b, k in enumerate(lengths.tolist()):
        single = model.decode(t[b : b + 1, :k], clamp=False)
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-4, rtol=1e-4)


def test_target_psnr_picks_fewest_tokens(model, images):
    t = model.encode(images)
    psnr = []
    for k in range(1, 9):
        rec = model.decode(t[:, :k])
        psnr.append(10 * torch.log10(1 / (rec - images).pow(2).flatten(1).mean(1)))
    psnr = torch.stack(psnr, 1)  # [B, 8]
    target = float(psnr.median())
    got = model.encode(images, target_psnr=target)
    assert got.ids.shape == (3, 8) and got.lengths.shape == (3,) and got.meta["target_psnr"] == target
    for b in range(3):
        k = int(got.lengths[b])
        ok = (psnr[b] >= target).nonzero()
        if len(ok) and bool((psnr[b, int(ok[0]):] >= target).all()):  # monotone from the first hit: exact
            assert k == int(ok[0]) + 1
        if k < 8:
            assert psnr[b, k - 1] >= target  # the chosen prefix reaches the target
    assert bool((model.encode(images, target_psnr=1e6).lengths == 8).all())  # unreachable -> all tokens
    assert bool((model.encode(images, target_psnr=-1e6).lengths == 1).all())
    assert bool((model.encode(images, num_tokens=4, target_psnr=1e6).lengths == 4).all())


def test_forward_training_drops_a_tail(model, images):
    m = odp.OneDPiece(odp.TINY_TEST).train()
    torch.manual_seed(3)
    seen = set()
    for _ in range(6):
        out = m(images)
        seen.add(int(out.metrics["num_tokens"]))
        assert out.recon.shape == images.shape and out.tokens.ids.shape == (3, 8)
        assert set(out.losses) == {"commitment", "codebook"}
    assert len(seen) > 1 and all(1 <= s <= 8 for s in seen)
    loss = out.recon.pow(2).mean() + sum(out.losses.values())
    loss.backward()
    assert m.encoder.patch_embed.weight.grad is not None  # straight-through reaches the encoder
    ev = model(images)
    assert int(ev.metrics["num_tokens"]) == 8


def test_bf16_model_runs(images):
    torch.manual_seed(0)
    m = odp.OneDPiece(odp.TINY_TEST).eval()
    ids = m.encode(images).ids
    m = m.to(torch.bfloat16)
    t = m.encode(images)  # fp32 images in, cast to the model's dtype inside
    assert t.ids.shape == ids.shape and m.decode(t).dtype == torch.float32  # media come back as fp32 whatever the weights
    assert m.encode(images, target_psnr=5.0).lengths.shape == (3,)


def test_save_load_round_trip(model, images, tmp_path):
    model.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    assert isinstance(again, odp.OneDPiece) and again.cfg == model.cfg
    t = model.encode(images)
    assert torch.equal(again.encode(images).ids, t.ids)
    torch.testing.assert_close(again.decode(t), model.decode(t))
    t.save(tmp_path / "x.tokens")
    assert torch.equal(Tokens.load(tmp_path / "x.tokens").ids, t.ids)


# ---------------------------------------------------------------------------------------------- converter
def _meta_state_dict(path: Path) -> dict[str, torch.Tensor]:
    sd = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            sd[key] = torch.empty(tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), device="meta")
    return sd


@pytest.mark.parametrize("path", KEY_FILES, ids=[p.name for p in KEY_FILES])
def test_released_layouts_convert(path):
    sd = _meta_state_dict(path)
    for config in (None, OFFICIAL_S256_YAML if path.name == "keys_full_s256.tsv" else None):
        cfg = odp.from_official_config(config, sd, {})
        assert cfg == RELEASED[path.name]
        with torch.device("meta"):
            m = odp.OneDPiece(cfg)
        ours = odp.remap_state_dict(sd, cfg)
        hub.check_state_dict(m, ours, source=path.name)  # every parameter/buffer filled with the right shape
        assert len(ours) == len(sd) + 2  # every official key used; + the quantizer's two bookkeeping buffers


def test_released_layouts_present():
    assert {p.name for p in parity_dir("one_d_piece").glob("keys_full*.tsv")} == set(RELEASED)


def _official_state_dict(m: odp.OneDPiece) -> dict[str, torch.Tensor]:
    """Our weights written back in the official layout (inverse of remap_state_dict), for tests."""
    inv = {}
    for k, v in m.state_dict().items():
        if k in ("quantizer.cluster_size", "quantizer.initialized"):
            continue
        o = k.replace("encoder.latent_tokens", "latent_tokens").replace("quantizer.codebook", "quantize.embedding.weight").replace("proxy_codebook", "pixel_quantize.embedding.weight")
        for ours, theirs in (("norm1.", "ln_1."), ("norm2.", "ln_2."), ("attn.qkv.weight", "attn.in_proj_weight"),
                             ("attn.qkv.bias", "attn.in_proj_bias"), ("attn.proj.", "attn.out_proj."),
                             ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."), (".blocks.", ".transformer."),
                             ("norm_pre.", "ln_pre."), ("norm_post.", "ln_post."), ("to_token.", "conv_out."),
                             ("token_embed.", "decoder_embed."), ("decoder.head.", "decoder.ffn.")):
            if not o.startswith("pixel_decoder"):
                o = o.replace(ours, theirs)
        if o in ("encoder.conv_out.weight", "decoder.ffn.0.weight", "decoder.ffn.2.weight"):
            v = v[:, :, None, None]
        inv[o] = v
    return inv


def test_convert_round_trip_other_sizes(model, images, tmp_path):
    from safetensors.torch import save_file

    cfg = odp.OneDPieceConfig(image_size=32, encoder_patch_size=8, decoder_patch_size=4, num_latent_tokens=5,
                              codebook_size=40, token_dim=6, encoder_width=64, encoder_depth=2, encoder_heads=4,
                              decoder_width=32, decoder_depth=1, decoder_heads=1, proxy_codebook_size=20,
                              proxy_dim=8, pixel_channels=32, pixel_channel_mult=(1, 2, 2), pixel_num_res_blocks=1)
    torch.manual_seed(5)
    src = odp.OneDPiece(cfg).eval()
    # the released files are torch pickles (pytorch_model.bin): convert reads them with weights_only=True
    torch.save({k: v.contiguous() for k, v in _official_state_dict(src).items()}, tmp_path / "pytorch_model.bin")
    official = {
        "model": {"vq_model": {
            "codebook_size": 40, "token_size": 6, "use_l2_norm": True, "vit_enc_model_size": "e",
            "vit_dec_model_size": "d", "vit_enc_patch_size": 8, "vit_dec_patch_size": 4, "num_latent_tokens": 5,
            "finetune_decoder": True, "pixel_codebook_size": 20,
            "pixel_decoder": {"channel_mult": [1, 2, 2], "num_resolutions": 3, "hidden_channels": 32,
                              "num_channels": 3, "num_res_blocks": 1, "z_channels": 8}}},
        "dataset": {"preprocessing": {"crop_size": 32}},
        "patched_model_size_table": {"e": {"width": 64, "num_layers": 2, "num_heads": 4},
                                     "d": {"width": 32, "num_layers": 1, "num_heads": 1}},
    }
    got = zoo.convert("one_d_piece", checkpoint=tmp_path / "pytorch_model.bin", config=official)
    assert got.cfg == cfg
    t = src.encode(images)
    assert torch.equal(got.encode(images).ids, t.ids)
    torch.testing.assert_close(got.decode(t), src.decode(t))


def test_unknown_or_missing_keys_fail_strict_loading(model, tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in _official_state_dict(model).items()}
    cfg_json = {"model": {"vq_model": {"vit_enc_model_size": "t", "vit_dec_model_size": "t"}},
                "patched_model_size_table": {"t": {"width": 32, "num_layers": 1, "num_heads": 2}}}
    save_file({**sd, "encoder.extra.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match="(?s)unexpected keys.*encoder.extra.weight"):
        zoo.convert("one_d_piece", checkpoint=tmp_path / "extra.safetensors", config=cfg_json)
    sd.pop("decoder.ffn.2.bias")
    save_file(sd, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="(?s)missing keys.*decoder.head.2.bias"):
        zoo.convert("one_d_piece", checkpoint=tmp_path / "missing.safetensors", config=cfg_json)


def test_official_config_errors():
    with pytest.raises(ValueError, match="model.vq_model"):
        odp.from_official_config({"model": {}}, {}, {})
    with pytest.raises(ValueError, match="stage-1"):
        odp.from_official_config({"model": {"vq_model": {"finetune_decoder": False}}}, {}, {})
    with pytest.raises(ValueError, match="Unknown One-D-Piece ViT size 'huge'"):
        odp.from_official_config({"model": {"vq_model": {"vit_enc_model_size": "huge"}}}, {}, {})
    with pytest.raises(ValueError, match="number of heads"):
        odp.from_official_config(None, {"encoder.ln_pre.weight": torch.empty(100, device="meta")}, {})


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"model.layers.0.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    tiny = {"model": {"vq_model": {"vit_enc_model_size": "t", "vit_dec_model_size": "t", "num_latent_tokens": 8,
                                   "codebook_size": 64, "vit_enc_patch_size": 8, "vit_dec_patch_size": 8,
                                   "pixel_codebook_size": 32,
                                   "pixel_decoder": {"channel_mult": [1, 1, 1, 1], "hidden_channels": 32,
                                                     "num_res_blocks": 2, "z_channels": 16}}},
            "dataset": {"preprocessing": {"crop_size": 32}},
            "patched_model_size_table": {"t": {"width": 32, "num_layers": 1, "num_heads": 2}}}
    with pytest.raises(ValueError, match="(?s)does not match OneDPiece.*missing keys.*unexpected keys.*model.layers"):
        zoo.convert("one_d_piece", checkpoint=tmp_path / "other.safetensors", config=tiny)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("x, err, match", [
    (torch.rand(3, 32, 32), ValueError, "unsqueeze"),
    (torch.rand(1, 1, 32, 32), ValueError, "RGB"),
    (torch.rand(1, 3, 64, 64), ValueError, "32x32"),
    (torch.rand(0, 3, 32, 32), ValueError, "empty"),
    ((torch.rand(1, 3, 32, 32) * 255).byte(), TypeError, "float"),
    (torch.full((1, 3, 32, 32), float("nan")), ValueError, "NaN"),
    (torch.rand(1, 3, 32, 32) * 4 - 2, ValueError, r"\[0, 1\]"),
    ([[0.0]], TypeError, "tensors"),
])
def test_bad_images(model, x, err, match):
    with pytest.raises(err, match=match):
        model.encode(x)


def test_bad_encode_arguments(model, images):
    for k in (0, 9, 2.5, True):
        with pytest.raises(ValueError, match="1 to 8 tokens"):
            model.encode(images, num_tokens=k)
    for p in (float("nan"), "30", float("inf")):
        with pytest.raises(ValueError, match="target_psnr"):
            model.encode(images, target_psnr=p)


def test_bad_tokens(model, images):
    t = model.encode(images)
    with pytest.raises(ValueError, match=r"\[0, 63\]"):
        model.decode(Tokens(t.ids + 64, layout="1d"))
    with pytest.raises(ValueError, match=r"\[0, 63\]"):
        model.decode(Tokens(t.ids - 100, layout="1d"))
    with pytest.raises(ValueError, match="1 to 8 tokens"):
        model.decode(Tokens(torch.cat([t.ids, t.ids], 1), layout="1d"))
    with pytest.raises(ValueError, match="ids\\[:, 0\\]"):
        model.decode(Tokens(t.ids[:, None], layout="rvq"))
    with pytest.raises(ValueError, match="empty"):
        model.decode(Tokens(t.ids[:, :0], layout="1d"))
    with pytest.raises(ValueError, match="lengths must lie in"):
        model.decode(Tokens(t.ids, layout="1d", lengths=torch.tensor([0, 3, 8])))
    with pytest.raises(ValueError, match="'wavtokenizer' tokenizer"):
        model.decode(Tokens(t.ids, layout="1d", meta={"family": "wavtokenizer"}))
    with pytest.raises(TypeError, match="zoo.Tokens"):
        model.decode(t.ids)
    with pytest.raises(ValueError, match="num_latent_tokens=256"):  # tokens of another variant
        model.decode(Tokens(t.ids, layout="1d", meta={**t.meta, "num_latent_tokens": 256, "variant": "one-d-piece-s-256"}))
    with pytest.raises(ValueError, match="image_size"):
        model.decode(Tokens(t.ids, layout="1d", meta={**t.meta, "image_size": [64, 64]}))


def test_bad_configs():
    with pytest.raises(ValueError, match="divisible by encoder_patch_size"):
        odp.OneDPieceConfig(image_size=250)
    with pytest.raises(ValueError, match="upsamples"):
        odp.OneDPieceConfig(pixel_channel_mult=(1, 1, 2, 2))
    with pytest.raises(ValueError, match="multiple of 32"):
        odp.OneDPieceConfig(pixel_channels=48)
    with pytest.raises(ValueError, match="no field"):
        odp.OneDPiece.config_from_dict({"widht": 3})
    with pytest.raises(ValueError, match="dead_code_threshold"):
        odp.OneDPieceConfig(dead_code_threshold=-1.0)
    with pytest.raises(ValueError, match="multiple of 24"):
        odp.OneDPieceConfig(pixel_norm_groups=24, pixel_channels=32, pixel_channel_mult=(1, 1, 2, 2, 4))
    with pytest.raises(ValueError, match="pixel_norm_groups must be a positive integer"):
        odp.OneDPieceConfig(pixel_norm_groups=0)


def test_pixel_norm_groups_reach_every_group_norm():
    import dataclasses

    m = odp.OneDPiece(dataclasses.replace(odp.TINY_TEST, pixel_norm_groups=8))
    norms = [mod for mod in m.pixel_decoder.modules() if isinstance(mod, torch.nn.GroupNorm)]
    assert norms and all(n.num_groups == 8 for n in norms)
    default = odp.OneDPiece(odp.TINY_TEST)
    assert all(n.num_groups == 32 for n in default.pixel_decoder.modules() if isinstance(n, torch.nn.GroupNorm))
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in default.state_dict().items()}


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_dead_code_restarts_only_when_configured(images, threshold):
    import dataclasses

    m = odp.OneDPiece(dataclasses.replace(odp.TINY_TEST, dead_code_threshold=threshold)).train()
    m.quantizer.cluster_size.zero_()  # every code looks unused
    before = m.quantizer.codebook.detach().clone()
    m(images)
    changed = (m.quantizer.codebook != before).any(-1)
    if threshold == 0:
        assert not changed.any()  # upstream's behaviour: no restarts
    else:
        assert changed.float().mean() > 0.5  # restarted onto (unit-norm) latents of the batch
        assert torch.allclose(m.quantizer.codebook[changed].norm(dim=-1), torch.ones(int(changed.sum())), atol=1e-5)
    with torch.no_grad():  # eval never restarts
        m.eval().quantizer.cluster_size.zero_()
        before = m.quantizer.codebook.clone()
        m.encode(images)
        assert torch.equal(m.quantizer.codebook, before)


# ---------------------------------------------------------------------------------------------- files / CLI
def test_cli_reconstructs_image_files(model, tmp_path, capsys):
    import json

    from zoo import cli, media

    model.save_pretrained(tmp_path / "m")
    media.save_image(tmp_path / "a.png", torch.rand(3, 50, 41))  # any size: resized and centre-cropped
    out = tmp_path / "rec"
    assert cli.main(["reconstruct", str(tmp_path / "m"), str(tmp_path / "a.png"), "--out", str(out),
                     "--num-tokens", "3", "--metrics", "-q"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["tokens"] == 3 and "psnr_db" in row
    assert media.load_image(out / "a.png").shape == (3, 32, 32)
    # target_psnr: the row counts the tokens chosen for the item (Tokens.lengths), not the ids' padded length
    assert cli.main(["reconstruct", str(tmp_path / "m"), str(tmp_path / "a.png"), "--out", str(out),
                     "--target-psnr", "1.0", "--metrics", "-q"]) == 0  # any reconstruction beats 1 dB: 1 token
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["tokens"] == 1 and row["psnr_db"] >= 1.0
    with pytest.raises(SystemExit, match="encode\\(\\) takes no colour; its options: num_tokens, target_psnr"):
        cli.main(["reconstruct", str(tmp_path / "m"), str(tmp_path / "a.png"), "--out", str(out), "-o", "colour=1"])
