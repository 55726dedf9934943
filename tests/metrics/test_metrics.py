"""Each metric against an independent implementation (or a hand-computed value) on a small case."""

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo import media, metrics

REPO = Path(__file__).resolve().parents[2]


def _photo(size=64):
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    return media.resize_center_crop(img, size)[None]


def test_psnr_and_ssim_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x = _photo(256)
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    a, b = x[0].permute(1, 2, 0).numpy().astype(np.float64), y[0].permute(1, 2, 0).numpy().astype(np.float64)
    assert float(metrics.psnr(x, y)) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-3)
    ref = structural_similarity(a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert float(metrics.ssim(x, y)) == pytest.approx(ref, abs=1e-5)
    with pytest.raises(ValueError, match="equal shapes"):
        metrics.psnr(x, y[..., :32])


def test_st_lpips_orders_distortions():
    x = _photo(64)
    g = torch.Generator().manual_seed(0)
    small = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    large = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    d0, d1, d2 = (float(metrics.st_lpips(x, y)) for y in (x, small, large))
    assert d0 == pytest.approx(0, abs=1e-6) and 0 < d1 < d2


def test_st_lpips_equals_the_stlpips_package(tmp_path):
    """Our network against the package's own LPIPS. The package imports IPython and torchsummary at
    module level, so it runs in a child process with stand-ins for those two (never in zoo itself)."""
    pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 64, 80, generator=g), torch.rand(2, 3, 64, 80, generator=g)
    torch.save({"x": x, "y": y}, tmp_path / "xy.pt")
    code = (
        "import importlib.util, sys, types, torch\n"
        "for m in ('IPython', 'torchsummary'):\n"
        "    if importlib.util.find_spec(m) is None:\n"
        "        sys.modules[m] = types.SimpleNamespace(embed=None, summary=None)\n"
        "from stlpips_pytorch import stlpips\n"
        f"d = torch.load({str(tmp_path / 'xy.pt')!r})\n"
        "net = stlpips.LPIPS(net='alex', variant='shift_tolerant', verbose=False).eval()\n"
        "with torch.no_grad(): print(net(d['x'] * 2 - 1, d['y'] * 2 - 1).flatten().tolist())\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ref = torch.tensor(eval(out.stdout.strip().splitlines()[-1]))
    ours = metrics.st_lpips(x, y)
    assert ours.shape == (2,)
    assert torch.allclose(ours, ref, atol=1e-5), (ours, ref)
    with pytest.raises(ValueError, match="net='alex'"):
        metrics.st_lpips(x, y, net="vgg")


def test_rfid_network_equals_the_shipped_torchscript():
    from zoo.metrics.image import inception_networks

    net, ts = inception_networks()
    x = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours, ref = net(x)[0], ts((x.float() - 128) / 128)
    assert (ours - ref.reshape(ours.shape)).abs().max() < 1e-4
    f = torch.randn(10, 8, dtype=torch.float64)
    from zoo.metrics.image import frechet_distance

    assert frechet_distance(f, f) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(f, f + 1) == pytest.approx(8.0, rel=1e-6)  # mean shift of 1 in 8 dims


def _speech():
    wav, sr = media.load_audio(REPO / "samples" / "speech_16k.wav")
    return wav[None, :, : 3 * sr], sr


def test_si_sdr_matches_torchmetrics():
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    x, sr = _speech()
    y = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ref = scale_invariant_signal_distortion_ratio(y[:, 0], x[:, 0], zero_mean=True)
    assert float(metrics.si_sdr(y, x)) == pytest.approx(float(ref), abs=1e-3)


def test_pesq_and_stoi_match_torchmetrics():
    from torchmetrics.functional.audio import perceptual_evaluation_speech_quality, short_time_objective_intelligibility

    x, sr = _speech()
    y = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ours = float(metrics.pesq(y, x, sr, "wb"))
    ref = float(perceptual_evaluation_speech_quality(y[0, 0].double(), x[0, 0].double(), sr, "wb"))
    assert ours == pytest.approx(ref, abs=1e-3) and 1.0 < ours < 4.7
    assert float(metrics.pesq(x, x, sr, "wb")) > 4.4
    s = float(metrics.stoi(y, x, sr))
    assert s == pytest.approx(float(short_time_objective_intelligibility(y[0, 0], x[0, 0], sr)), abs=1e-4)


def test_mel_distance_grows_with_distortion():
    x, sr = _speech()
    g = torch.Generator().manual_seed(0)
    d = [float(metrics.mel_distance(x + a * torch.randn(x.shape, generator=g), x, sr)) for a in (0.0, 0.001, 0.05)]
    assert d[0] == 0 and d[0] < d[1] < d[2]


def test_chamfer_fscore_iou_against_brute_force():
    g = np.random.default_rng(0)
    a, b = g.random((200, 3)), g.random((150, 3))
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    assert metrics.chamfer_distance(a, b) == pytest.approx((d.min(1).mean() + d.min(0).mean()) / 2, rel=1e-9)
    p, r = (d.min(1) < 0.1).mean(), (d.min(0) < 0.1).mean()
    assert metrics.f_score(a, b, 0.1) == pytest.approx(2 * p * r / (p + r), rel=1e-9)
    occ_a = np.zeros((4, 4, 4), bool)
    occ_a[:2] = True
    occ_b = np.zeros((4, 4, 4), bool)
    occ_b[1:3] = True
    assert metrics.volume_iou(occ_a, occ_b) == pytest.approx(16 / 48)
