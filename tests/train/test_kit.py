"""Unit tests of zoo.train: losses, discriminators, data (sharding, resume, errors, tar shards),
recipes, EMA and atomic checkpoints."""

from __future__ import annotations

import io
import tarfile

import pytest
import torch

from zoo.train import losses as L
from zoo.train.data import DataConfig, ResumableBatchSampler, build_dataset
from zoo.train.discriminators import build_discriminator
from zoo.train.recipe import ModelConfig, TrainConfig, apply_overrides, load_yaml, parse


def test_reconstruction_losses_vanish_on_equal_inputs_only():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 4000, generator=g) * 2 - 1, torch.rand(2, 1, 4000, generator=g) * 2 - 1
    stft, mel = L.MultiResolutionSTFTLoss((256, 512)), L.MelLoss(8000, (256,), n_mels=32)
    for fn in (L.l1_loss, L.l2_loss, stft, mel):
        assert float(fn(a, a)) < 1e-6 < float(fn(a, b))
    img_a, img_b = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    perc = L.build_perceptual("tiny_conv", linear=True)
    assert float(perc(img_a, img_a)) < 1e-6 < float(perc(img_a, img_b))
    x = img_b.clone().requires_grad_()
    perc(x, img_a).backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in perc.parameters())
    with pytest.raises(ValueError, match="vgg16"):
        L.build_perceptual("alexnet")


def test_adversarial_feature_matching_kl_and_flow_losses():
    real, fake = [torch.full((2, 5), 2.0)], [torch.full((2, 5), -2.0)]
    assert float(L.discriminator_loss(real, fake, "hinge")) == 0.0  # both beyond the margin
    assert float(L.discriminator_loss(fake, real, "lsgan")) == pytest.approx(9 + 4)
    assert float(L.generator_loss(fake, "hinge")) == 2.0 and float(L.generator_loss(real, "lsgan")) == 1.0
    with pytest.raises(ValueError, match="hinge"):
        L.generator_loss(fake, "wgan")
    f = [[torch.ones(2, 3), torch.zeros(2, 3)]]
    assert float(L.feature_matching_loss(f, f)) == 0.0
    assert float(L.kl_loss(torch.zeros(2, 4), torch.zeros(2, 4))) == 0.0
    assert float(L.kl_loss(torch.ones(2, 4), torch.zeros(2, 4))) == pytest.approx(2.0)
    t = L.logit_normal_timesteps(10000, generator=torch.Generator().manual_seed(0))
    assert 0 < float(t.min()) and float(t.max()) < 1 and abs(float(t.mean()) - 0.5) < 0.02
    v = torch.randn(2, 3, 4, 4)
    assert float(L.flow_matching_loss(v, v)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        L.flow_matching_loss(v, v[:1])


@pytest.mark.parametrize("kind,x", [("patchgan", torch.rand(2, 3, 32, 32)), ("mpd+mrd", torch.rand(2, 1, 2048) * 2 - 1)])
def test_discriminators_give_logits_and_features(kind, x):
    d = build_discriminator(kind, width=8, num_layers=2, norm="group", periods=(2, 3), mpd_channels=(4, 8),
                            resolutions=((256, 64, 256),), mrd_channels=4)
    logits, feats = d(x)
    assert len(logits) == len(feats) == (1 if kind == "patchgan" else 3)
    assert all(l.shape[0] == 2 and torch.isfinite(l).all() for l in logits)
    with pytest.raises(ValueError, match="patchgan"):
        build_discriminator("msd")


def _images(tmp_path, n=5):
    from zoo.media.image import save_image

    for i in range(n):
        save_image(tmp_path / f"{i}.png", torch.rand(3, 20 + i, 30, generator=torch.Generator().manual_seed(i)))
    return tmp_path


def test_sampler_shards_by_rank_and_resumes_at_any_batch():
    s0 = ResumableBatchSampler(20, 3, rank=0, world_size=2, seed=1)
    s1 = ResumableBatchSampler(20, 3, rank=1, world_size=2, seed=1)
    it0, it1 = iter(s0), iter(s1)
    e0 = [i for _ in range(3) for i, _ in next(it0)]
    e1 = [i for _ in range(3) for i, _ in next(it1)]
    assert not set(e0) & set(e1)  # the ranks see disjoint samples within an epoch
    first = [next(it0) for _ in range(5)]  # batches 3..7 cross into epoch 2
    resumed = iter(ResumableBatchSampler(20, 3, rank=0, world_size=2, seed=1, start_batch=3))
    assert [next(resumed) for _ in range(5)] == first
    with pytest.raises(ValueError, match="no full batch"):
        ResumableBatchSampler(3, 2, world_size=2)


def test_image_folder_crops_deterministically_and_names_bad_files(tmp_path):
    root = _images(tmp_path)
    cfg = DataConfig(kind="image_folder", paths=(str(root),), size=16, resize="short_side", crop="random", flip=True)
    ds = build_dataset(cfg)
    a, b, c = ds[(2, 7)], ds[(2, 7)], ds[(2, 8)]
    assert a.shape == (3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    (root / "broken.png").write_bytes(b"not a png")
    ds = build_dataset(cfg)
    bad = [i for i, p in enumerate(ds.items) if p.name == "broken.png"][0]
    with pytest.raises(ValueError, match=r"broken\.png.*on_error: skip"):
        ds[(bad, 0)]
    skip = build_dataset(DataConfig(kind="image_folder", paths=(str(root),), size=16, on_error="skip"))
    assert skip[(bad, 0)].shape == (3, 16, 16)  # the next readable sample
    with pytest.raises(ValueError, match="smaller than"):
        build_dataset(DataConfig(kind="image_folder", paths=(str(root),), size=64, resize="none"))[(0, 0)]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset(DataConfig(paths=(str(tmp_path / "nope"),)))


def test_audio_folder_and_tar_shards(tmp_path):
    import soundfile as sf

    wav = (torch.sin(torch.arange(16000) / 10.0) * 0.5).numpy()
    stereo = torch.stack([torch.from_numpy(wav)] * 2, 1).numpy()
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "s.wav", stereo, 16000)
    cfg = DataConfig(kind="audio_folder", paths=(str(tmp_path / "a"),), sample_rate=8000, segment_seconds=0.5, repeat=4)
    ds = build_dataset(cfg)
    assert len(ds) == 4 and ds[(1, 3)].shape == (1, 4000)
    # webdataset-style shard: one image sample and one sidecar file per key
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tf:
        for i in range(3):
            buf = io.BytesIO()
            from zoo.media.image import to_pil

            to_pil(torch.rand(3, 24, 24)).save(buf, format="PNG")
            for name, data in ((f"{i:06d}.png", buf.getvalue()), (f"{i:06d}.json", b"{}")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    tar = build_dataset(DataConfig(kind="tar_shards", paths=(str(shard),), modality="image", size=16))
    assert len(tar) == 3 and tar[(0, 0)].shape == (3, 16, 16)
    (tmp_path / "cut.tar").write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.tar"):
        t = build_dataset(DataConfig(kind="tar_shards", paths=(str(tmp_path / "cut.tar"),), size=16))
        t[(0, 0)]


def test_recipe_parsing_is_strict_and_supports_one_base(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {steps: 5, seed: 1}\nmodel: {family: toy}\n")
    (tmp_path / "r.yaml").write_text("base: base.yaml\ntrain: {steps: 7}\n")
    data = apply_overrides(load_yaml(tmp_path / "r.yaml"), ["train.seed=3", "model.freeze=[encoder]"])
    assert data == {"train": {"steps": 7, "seed": 3}, "model": {"family": "toy", "freeze": ["encoder"]}}
    assert parse(TrainConfig, data["train"]).steps == 7
    assert parse(ModelConfig, data["model"]).freeze == ("encoder",)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lr'\]"):
        parse(TrainConfig, {"lr": 1})
    with pytest.raises(ValueError, match="must be int"):
        parse(TrainConfig, {"steps": "ten"})
    (tmp_path / "b2.yaml").write_text("base: base.yaml\n")
    (tmp_path / "r2.yaml").write_text("base: b2.yaml\n")
    with pytest.raises(ValueError, match="one level"):
        load_yaml(tmp_path / "r2.yaml")


def test_ema_and_atomic_checkpoint(tmp_path):
    from zoo.train import checkpoint as ckpt
    from zoo.train.distributed import DistInfo
    from zoo.train.ema import EMA

    m = torch.nn.Linear(3, 2)
    ema = EMA(m, decay=0.5, warmup=False)
    before = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(2.0)
    ema.update(m)
    assert torch.allclose(ema.shadow["weight"], before + 1.0)
    opt = torch.optim.AdamW(m.parameters())
    info = DistInfo()
    path = ckpt.save_checkpoint(tmp_path, 5, info, models={"m": m}, optimizers={"m": (m, opt)}, ema=ema,
                                data_state={"batches": 5})
    assert ckpt.latest_checkpoint(tmp_path) == path and not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "checkpoints" / ".step_00000006.pt.abc.tmp").write_bytes(b"half")  # a save cut short
    assert ckpt.latest_checkpoint(tmp_path) == path
    m2, ema2 = torch.nn.Linear(3, 2), EMA(torch.nn.Linear(3, 2), decay=0.5)
    state = ckpt.load_checkpoint(path, info, models={"m": m2}, ema=ema2)
    assert state["step"] == 5 and state["data"] == {"batches": 5}
    assert torch.equal(m2.weight, m.weight) and torch.equal(ema2.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(ValueError, match="this run has 2"):
        ckpt.load_checkpoint(path, DistInfo(world_size=2, backend="gloo"), models={"m": m2})


def test_loss_forward_runs_the_loss_as_the_forward_with_the_class_forward_inside():
    """zd.loss_forward: the loss is the module's forward (one call through __call__ and its hooks), the class's
    forward is callable inside it, and the logged terms come back detached (DDP reads the graph of the outputs)."""
    from torch import nn

    from zoo.train import distributed as zd

    model = nn.Linear(3, 2)
    calls = []
    model.register_forward_pre_hook(lambda m, args: calls.append(len(args)))

    def loss_fn(inner, x):
        y = inner.forward(x)  # the class's forward: no second trip through the hooks
        loss = y.pow(2).mean()
        return loss, {"loss": loss, "y0": y[0, 0]}

    loss, logged = zd.loss_forward(model, loss_fn)(torch.ones(4, 3))
    assert calls == [1] and "forward" not in vars(model)
    assert loss.requires_grad and not any(v.requires_grad for v in logged.values())
    loss.backward()
    assert model.weight.grad is not None
