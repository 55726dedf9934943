"""Proxy-code teachers (TiTok's stage 1) and One-D-Piece's cross-entropy on their codes, alone and
through training/train_autoencoder.py (fit the teacher, then a proxy-code step and a pixel step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zoo.train.one_d_piece import training_forward
from zoo.train.proxy import PatchKMeansTeacher, fit_patch_kmeans, load_teacher

REPO = Path(__file__).resolve().parents[2]


def _two_colour_images(n: int = 6) -> torch.Tensor:
    """8x8 patches that are either all red or all blue, in a random layout per image."""
    g = torch.Generator().manual_seed(0)
    layout = torch.randint(0, 2, (n, 1, 4, 4), generator=g).float()  # 4x4 grid of 8x8 patches
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    img = layout * red[None, :, None, None] + (1 - layout) * blue[None, :, None, None]  # [n, 3, 4, 4]
    return F.interpolate(img, scale_factor=8, mode="nearest"), layout[:, 0].long()


def test_patch_kmeans_recovers_the_two_patch_kinds_and_round_trips(tmp_path):
    images, layout = _two_colour_images()
    teacher = fit_patch_kmeans(images, patch_size=8, num_codes=2, iters=5)
    ids = teacher(images)
    assert ids.shape == (6, 4, 4) and ids.dtype == torch.long
    # the two codes are the two colours, whichever index each got
    assert torch.equal(ids, layout) or torch.equal(ids, 1 - layout)
    teacher.save(tmp_path / "t.safetensors")
    again = load_teacher(tmp_path / "t.safetensors")
    assert again.patch_size == 8 and torch.equal(again(images), ids)


def test_patch_kmeans_decode_mixes_the_centroids_patch_by_patch():
    images, layout = _two_colour_images()
    teacher = fit_patch_kmeans(images, patch_size=8, num_codes=2, iters=5)
    ids = teacher(images)
    one_hot = F.one_hot(ids, 2).permute(0, 3, 1, 2).float()  # [B, K, h, w]
    torch.testing.assert_close(teacher.decode(one_hot), images)  # its own codes give the two-colour images back
    half = teacher.decode(torch.full_like(one_hot, 0.5))  # an even mix: every patch purple
    torch.testing.assert_close(half, torch.tensor([0.5, 0.0, 0.5]).view(1, 3, 1, 1).expand_as(images))
    probs = one_hot.clone().requires_grad_(True)
    teacher.decode(probs).sum().backward()
    assert probs.grad.abs().sum() > 0  # differentiable in the probabilities (the proxy_decode loss)
    with pytest.raises(ValueError, match=r"probabilities \[B, 2, h, w\]"):
        teacher.decode(one_hot[:, :1])


def test_teacher_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"\[K, 3 \* 8\^2 = 192\]"):
        PatchKMeansTeacher(torch.zeros(4, 10), patch_size=8)
    teacher = PatchKMeansTeacher(torch.zeros(4, 192), patch_size=8)
    with pytest.raises(ValueError, match="multiples of 8"):
        teacher(torch.rand(1, 3, 20, 16))
    with pytest.raises(FileNotFoundError, match="fit_proxy_teacher"):
        load_teacher(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"centroids": torch.zeros(4, 192)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a proxy teacher"):
        load_teacher(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="cannot give 64"):
        fit_patch_kmeans(torch.rand(1, 3, 16, 16), patch_size=8, num_codes=64)


def test_one_d_piece_proxy_cross_entropy():
    from zoo.tokenizers.one_d_piece import TINY_TEST, OneDPiece

    torch.manual_seed(0)
    model = OneDPiece(TINY_TEST).train()
    s, g = TINY_TEST.image_size, TINY_TEST.image_size // TINY_TEST.decoder_patch_size
    x = torch.rand(2, 3, s, s)
    ids = torch.randint(0, TINY_TEST.proxy_codebook_size, (2, g, g))
    out = training_forward(model, x, proxy_ids=ids)
    ce = out.losses["proxy"]
    assert 0 < float(ce.detach()) and torch.isfinite(ce)
    grad = torch.autograd.grad(ce, model.encoder.to_token.weight)[0]
    assert grad.abs().sum() > 0  # the proxy loss trains the encoder, through the straight-through code
    assert "proxy" not in model(x).losses
    with pytest.raises(ValueError, match=r"proxy_ids must be \[B, g, g\]"):
        training_forward(model, x, proxy_ids=ids[:, :1])

    # proxy_render: the pixel decoder rendering the teacher's own codes; it trains the proxy codebook and the pixel
    # decoder only (a decoder for the teacher), and equals the L2 of that rendering by hand
    render = out.losses["proxy_render"]
    by_hand = model.pixel_decoder(model.proxy_codebook[ids].permute(0, 3, 1, 2))
    assert torch.allclose(render, (by_hand - x).pow(2).mean())
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(render, list(params.values()), allow_unused=True)
    moved = {name.split(".")[0] for name, gr in zip(params, grads) if gr is not None and gr.abs().sum() > 0}
    assert moved == {"proxy_codebook", "pixel_decoder"}


def test_one_d_piece_proxy_decode_and_continuous_warm_up():
    from zoo.tokenizers.one_d_piece import TINY_TEST, OneDPiece

    torch.manual_seed(0)
    model = OneDPiece(TINY_TEST).train()
    s, g, k = TINY_TEST.image_size, TINY_TEST.image_size // TINY_TEST.decoder_patch_size, TINY_TEST.proxy_codebook_size
    p = TINY_TEST.decoder_patch_size
    teacher = PatchKMeansTeacher(torch.rand(k, 3 * p * p), patch_size=p)
    x = torch.rand(2, 3, s, s)
    gen = torch.Generator().manual_seed(0)
    out = training_forward(model, x, generator=gen, proxy_decoder=teacher.decode)
    assert set(out.losses) >= {"proxy_decode"} and "proxy" not in out.losses  # needs no proxy_ids
    # by hand: the teacher's decoder on the softmax of the decoder's logits (the same tail drop draw)
    zq = model.tail_drop(model.quantize(model.encode_latent(x))[0], generator=torch.Generator().manual_seed(0)).x
    by_hand = teacher.decode(model.decode_logits(zq).softmax(1))
    torch.testing.assert_close(out.losses["proxy_decode"], (by_hand - x).pow(2).mean())
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(out.losses["proxy_decode"], list(params.values()), allow_unused=True)
    moved = {name.split(".")[0] for name, gr in zip(params, grads) if gr is not None and gr.abs().sum() > 0}
    assert moved == {"encoder", "decoder"}  # not the pixel decoder nor the proxy codebook
    skipped = training_forward(model, x, proxy_decoder=teacher.decode, render=False)  # a proxy stage without pixel losses
    assert skipped.recon is None and torch.isfinite(skipped.losses["proxy_decode"])

    # continuous warm-up: the decoder reads the l2-normalised latents; the quantizer still counts usage
    model.eval()
    quantized = model.decode_logits(model.quantize(model.encode_latent(x))[0])
    model.train()
    model.tail_drop.min_keep = TINY_TEST.num_latent_tokens  # keep every token: compare whole outputs
    before = model.quantizer.cluster_size.clone()
    out = training_forward(model, x, proxy_decoder=teacher.decode, continuous=True)
    assert not torch.equal(model.quantizer.cluster_size, before)  # usage statistics still update
    continuous = model.decode_logits(F.normalize(model.encode_latent(x), dim=-1))
    by_hand = teacher.decode(continuous.softmax(1))
    torch.testing.assert_close(out.losses["proxy_decode"], (by_hand - x).pow(2).mean())
    assert not torch.allclose(continuous, quantized, atol=1e-4)
    model.eval()  # a training pass only: encode/decode stay discrete
    torch.testing.assert_close(model.decode_logits(model.quantize(model.encode_latent(x))[0]), quantized)


def test_proxy_stage_through_the_training_program(tmp_path):
    from zoo.media import save_image

    for i in range(3):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 44, 52, generator=torch.Generator().manual_seed(i)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    recipe = REPO / "recipes" / "_smoke" / "one_d_piece.yaml"
    teacher = tmp_path / "teacher.safetensors"
    common = [f"data.paths=[{tmp_path / 'imgs'}]", f"loss.proxy_teacher={teacher}"]

    def run(script, *args):
        proc = subprocess.run([sys.executable, str(REPO / "training" / script), str(recipe), *args], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    run("fit_proxy_teacher.py", *common, "--images", "8", "--iters", "2")
    assert load_teacher(teacher).num_codes == 32  # the recipe's proxy_codebook_size
    stages = ("loss.stages=[{name: warm, from_step: 0, continuous: true, weights: {proxy_decode: 1.0, quantizer: 0.0}},"
              " {name: proxy, from_step: 1, weights: {proxy: 1.0, proxy_render: 1.0, quantizer: 0.0}},"
              " {name: pixels, from_step: 2, weights: {l2: 1.0}}]")
    run("train_autoencoder.py", *common, stages, "train.steps=3", f"train.run_dir={tmp_path / 'run'}")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "proxy_decode" in rows[0] and "proxy" not in rows[0] and "l2" not in rows[0]
    assert "proxy" in rows[1] and "proxy_render" in rows[1] and "l2" not in rows[1] and "proxy_decode" not in rows[1]
    assert "l2" in rows[2] and "proxy" not in rows[2] and "proxy_render" not in rows[2]


# ----------------------------------------------------------------------------------------------
# MaskGIT-VQGAN teacher
# ----------------------------------------------------------------------------------------------
def _maskgit_vqgan_layout(channels, mult, blocks, z, codes, decoder=True):
    """{official key: shape} of upstream's PretrainedTokenizer (modeling/modules/maskgit_vqgan.py Encoder +
    VectorQuantizer; a few decoder keys stand in for the decoder, which the teacher ignores). Level i goes from
    channels * (1, *mult)[i] to channels * mult[i]; a block whose width changes has a 1x1 nin_shortcut."""
    shapes = {"encoder.conv_in.weight": (channels, 3, 3, 3)}

    def block(prefix, cin, cout):
        shapes.update({f"{prefix}.norm1.weight": (cin,), f"{prefix}.norm1.bias": (cin,),
                       f"{prefix}.conv1.weight": (cout, cin, 3, 3), f"{prefix}.norm2.weight": (cout,),
                       f"{prefix}.norm2.bias": (cout,), f"{prefix}.conv2.weight": (cout, cout, 3, 3)})
        if cin != cout:
            shapes[f"{prefix}.nin_shortcut.weight"] = (cout, cout, 1, 1)

    widths = [channels * m for m in (1, *mult)]
    for i in range(len(mult)):
        for j in range(blocks):
            block(f"encoder.down.{i}.block.{j}", widths[i] if j == 0 else widths[i + 1], widths[i + 1])
    for j in range(blocks):
        block(f"encoder.mid.{j}", widths[-1], widths[-1])
    shapes.update({"encoder.norm_out.weight": (widths[-1],), "encoder.norm_out.bias": (widths[-1],),
                   "encoder.conv_out.weight": (z, widths[-1], 1, 1), "encoder.conv_out.bias": (z,),
                   "quantize.embedding.weight": (codes, z)})
    if decoder:
        shapes.update({"decoder.conv_in.weight": (widths[-1], z, 3, 3), "decoder.conv_in.bias": (widths[-1],),
                       "decoder.conv_out.weight": (3, channels, 3, 3), "decoder.conv_out.bias": (3,)})
    return shapes


def _reference_encoder(sd, x, levels, blocks):
    """MaskGIT-VQGAN's encoder written out with functional ops on the official keys (the test's own
    reading of upstream, independent of zoo.blocks): conv_in -> per level residual blocks (+ 2x2 avg pool
    except the last) -> mid blocks -> GN -> SiLU -> conv_out."""
    def gn(h, p):
        return F.group_norm(h, 32, sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-6)

    def resblock(h, p):
        y = F.conv2d(F.silu(gn(h, f"{p}.norm1")), sd[f"{p}.conv1.weight"], padding=1)
        y = F.conv2d(F.silu(gn(y, f"{p}.norm2")), sd[f"{p}.conv2.weight"], padding=1)
        shortcut = sd.get(f"{p}.nin_shortcut.weight")
        return y + (F.conv2d(y, shortcut) if shortcut is not None else h)  # the quirk: shortcut of the output

    h = F.conv2d(x, sd["encoder.conv_in.weight"], padding=1)
    for i in range(levels):
        for j in range(blocks):
            h = resblock(h, f"encoder.down.{i}.block.{j}")
        if i < levels - 1:
            h = F.avg_pool2d(h, 2)
    for j in range(blocks):
        h = resblock(h, f"encoder.mid.{j}")
    h = F.silu(gn(h, "encoder.norm_out"))
    return F.conv2d(h, sd["encoder.conv_out.weight"], sd["encoder.conv_out.bias"])


SMALL = dict(channels=32, mult=(1, 2, 2), blocks=2, z=8, codes=16)  # reduced config: p = 4


def _small_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in _maskgit_vqgan_layout(**SMALL).items():
        if ".norm" in k:  # GroupNorm affine near identity, so activations keep a sane scale
            base = 1.0 if k.endswith("weight") else 0.0
            sd[k] = base + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            sd[k] = torch.randn(shape, generator=g) / fan_in**0.5
    return sd


def test_maskgit_vqgan_teacher_from_an_official_layout_bin(tmp_path):
    from zoo.train.proxy import MaskGITVQGANTeacher

    sd = _small_state_dict()
    x = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    z = _reference_encoder(sd, x, levels=3, blocks=2)  # [3, 8, 8, 12]
    # codes near actual encoder outputs, so that several codes win
    rows = z.permute(0, 2, 3, 1).reshape(-1, 8)
    sd["quantize.embedding.weight"] = rows[torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(2))[:16]] \
        + 0.01 * torch.randn(16, 8, generator=torch.Generator().manual_seed(3))
    torch.save(sd, tmp_path / "maskgit-vqgan-small.bin")

    teacher = load_teacher(tmp_path / "maskgit-vqgan-small.bin")
    assert isinstance(teacher, MaskGITVQGANTeacher)
    assert teacher.patch_size == 4 and teacher.num_codes == 16 and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    ids = teacher(x)
    assert ids.shape == (3, 8, 12) and ids.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < 16 and ids.unique().numel() > 4
    # each id is a nearest code of the reference encoder's output (ties: any nearest one)
    d = torch.cdist(rows.double(), sd["quantize.embedding.weight"].double())  # [B h w, K]
    chosen = d.gather(1, ids.reshape(-1, 1))[:, 0]
    torch.testing.assert_close(chosen, d.min(1).values, atol=1e-5, rtol=0)
    assert (ids.reshape(-1) == d.argmin(1)).float().mean() > 0.99
    # fp32 even under bf16 autocast (the training loop calls the teacher inside it)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(teacher(x), ids)
    # the same keys as safetensors load too
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "small.safetensors"))
    assert torch.equal(load_teacher(tmp_path / "small.safetensors")(x), ids)
    with pytest.raises(ValueError, match="multiples of 4"):
        teacher(torch.rand(1, 3, 30, 32))


def test_maskgit_vqgan_teacher_is_strict_and_names_keys(tmp_path):
    sd = _small_state_dict()
    broken = {k: v for k, v in sd.items() if k != "encoder.down.1.block.0.nin_shortcut.weight"}
    torch.save(broken, tmp_path / "missing.bin")
    with pytest.raises(ValueError, match=r"(?s)missing\.bin \(a MaskGIT-VQGAN teacher.*missing keys \(1\):\s+"
                                         r"encoder\.down\.1\.block\.0\.nin_shortcut\.weight\n.*Accepted: upstream"):
        load_teacher(tmp_path / "missing.bin")
    torch.save({**sd, "encoder.extra.weight": torch.zeros(2)}, tmp_path / "extra.bin")
    with pytest.raises(ValueError, match=r"unexpected keys \(1\):\s+encoder\.extra\.weight"):
        load_teacher(tmp_path / "extra.bin")
    torch.save({**sd, "quantize.embedding.weight": torch.zeros(16, 9)}, tmp_path / "shape.bin")
    with pytest.raises(ValueError, match=r"codebook: checkpoint \[16, 9\] vs model \[16, 8\]"):
        load_teacher(tmp_path / "shape.bin")
    torch.save({k: v for k, v in sd.items() if k != "encoder.conv_in.weight"}, tmp_path / "noenc.bin")
    with pytest.raises(ValueError, match=r"missing encoder\.conv_in\.weight"):
        load_teacher(tmp_path / "noenc.bin")
    torch.save([1, 2], tmp_path / "list.bin")
    with pytest.raises(ValueError, match="not a flat state dict"):
        load_teacher(tmp_path / "list.bin")
    (tmp_path / "junk.bin").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_teacher(tmp_path / "junk.bin")


def test_released_maskgit_vqgan_layout_is_consumed_on_meta():
    """The released maskgit-vqgan-imagenet-f16-256 layout (upstream PretrainedTokenizer: hidden 128, channel_mult
    [1, 1, 2, 2, 4], 2 res blocks, z 256, 1024 codes): every encoder / codebook key used with its shape."""
    from zoo.train.proxy import MaskGITVQGANTeacher

    layout = _maskgit_vqgan_layout(128, (1, 1, 2, 2, 4), 2, 256, 1024)
    assert {k for k in layout if "nin_shortcut" in k} == {"encoder.down.2.block.0.nin_shortcut.weight",
                                                         "encoder.down.4.block.0.nin_shortcut.weight"}
    assert sum(k.startswith("encoder.") for k in layout) == 79
    sd = {k: torch.empty(s, device="meta") for k, s in layout.items()}
    teacher = MaskGITVQGANTeacher.from_state_dict(sd)
    assert teacher.patch_size == 16 and teacher.num_codes == 1024
    got = {("quantize.embedding.weight" if k == "codebook" else k): tuple(v.shape) for k, v in teacher.state_dict().items()}
    assert got == {k: s for k, s in layout.items() if not k.startswith("decoder.")}
    default = MaskGITVQGANTeacher.__init__.__defaults__
    assert default == (128, (1, 1, 2, 2, 4), 2, 256, 1024)  # the constructor's defaults are the released sizes


def test_training_program_takes_the_maskgit_vqgan_bin(tmp_path):
    """The smoke recipe (32x32 images, decoder patch 8, 32 proxy codes) with an official-layout .bin teacher of
    p = 8 (four levels): one proxy-code step; a teacher with another code count is refused by name."""
    from zoo.media import save_image

    for i in range(2):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(i)))
    g = torch.Generator().manual_seed(0)
    for name, codes in (("good.bin", 32), ("bad.bin", 16)):
        layout = _maskgit_vqgan_layout(32, (1, 1, 1, 1), 1, 8, codes)
        torch.save({k: 0.1 * torch.randn(s, generator=g) for k, s in layout.items()}, tmp_path / name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    recipe = REPO / "recipes" / "_smoke" / "one_d_piece.yaml"

    def run(teacher, weights="proxy: 1.0, quantizer: 1.0"):
        return subprocess.run(
            [sys.executable, str(REPO / "training" / "train_autoencoder.py"), str(recipe), f"data.paths=[{tmp_path / 'imgs'}]",
             f"loss.proxy_teacher={tmp_path / teacher}", "train.steps=1", f"train.run_dir={tmp_path / teacher}.run",
             f"loss.stages=[{{name: proxy, from_step: 0, weights: {{{weights}}}}}]"],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=300)

    bad = run("bad.bin")
    assert bad.returncode != 0 and "gives 16 codes, but the model predicts 32" in bad.stderr
    no_decoder = run("good.bin", "proxy_decode: 1.0")  # this teacher class reads no decoder
    assert no_decoder.returncode != 0 and "weights `proxy_decode`, but the proxy teacher" in no_decoder.stderr
    good = run("good.bin")
    assert good.returncode == 0, good.stderr[-3000:]
    row = json.loads((tmp_path / "good.bin.run" / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 < row["proxy"] and "l2" not in row
