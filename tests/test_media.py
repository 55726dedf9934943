import math

import numpy as np
import pytest
import torch

from zoo import media
from zoo.inputs import prepare_audio, prepare_images


def test_audio_round_trip_and_errors(tmp_path):
    sr = 16000
    t = torch.arange(sr) / sr
    wav = (0.5 * torch.sin(2 * math.pi * 440 * t))[None].repeat(2, 1)  # [2, T] stereo
    media.save_audio(tmp_path / "a.wav", wav, sr, subtype="FLOAT")
    back, sr2 = media.load_audio(tmp_path / "a.wav")
    assert sr2 == sr and back.shape == (2, sr)
    assert torch.allclose(back, wav, atol=1e-6)
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(ValueError, match="as audio"):
        media.load_audio(tmp_path / "bad.wav")
    with pytest.raises(FileNotFoundError):
        media.load_audio(tmp_path / "none.wav")
    with pytest.raises(ValueError, match=".mp4"):
        media.save_audio(tmp_path / "a.mp4", wav, sr)


def test_resample_keeps_a_tone():
    sr = 16000
    t = torch.arange(sr) / sr
    x = torch.sin(2 * math.pi * 440 * t)[None, None]
    y = media.resample(x, sr, 24000)
    assert y.shape[-1] == 24000
    spec = torch.fft.rfft(y[0, 0]).abs()
    assert abs(int(spec.argmax()) - 440) <= 1


def test_mel_spectrogram_shape():
    m = media.mel_spectrogram(torch.randn(2, 24000), 24000, n_fft=1024, hop_length=256, n_mels=100)
    assert m.shape == (2, 100, 24000 // 256 + 1)


def test_image_round_trip(tmp_path):
    img = torch.rand(3, 20, 30)
    media.save_image(tmp_path / "a.png", img)
    back = media.load_image(tmp_path / "a.png")
    assert back.shape == (3, 20, 30)
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="as an image"):
        media.load_image(tmp_path / "bad.png")
    out = media.resize_center_crop(img, 16)
    assert out.shape == (3, 16, 16)


def test_prepare_audio_errors_and_resampling():
    kw = dict(name="T", model_rate=24000)
    with pytest.raises(ValueError, match="sample_rate"):
        prepare_audio(torch.zeros(1, 1, 10), sample_rate=None, **kw)
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        prepare_audio(torch.zeros(10), sample_rate=24000, **kw)
    with pytest.raises(ValueError, match="unsqueeze"):
        prepare_audio(torch.zeros(2, 10), sample_rate=24000, **kw)
    with pytest.raises(ValueError, match="mono=True"):
        prepare_audio(torch.zeros(1, 2, 10), sample_rate=24000, **kw)
    with pytest.raises(ValueError, match="empty"):
        prepare_audio(torch.zeros(1, 1, 0), sample_rate=24000, **kw)
    with pytest.raises(ValueError, match="NaN"):
        prepare_audio(torch.full((1, 1, 10), float("nan")), sample_rate=24000, **kw)
    with pytest.raises(TypeError, match="int16"):
        prepare_audio(torch.zeros(1, 1, 10, dtype=torch.int16), sample_rate=24000, **kw)
    out = prepare_audio(torch.zeros(1, 2, 16000), sample_rate=16000, mono=True, **kw)
    assert out.shape == (1, 1, 24000)


def test_prepare_images_errors():
    with pytest.raises(ValueError, match="unsqueeze"):
        prepare_images(torch.rand(3, 8, 8), name="T")
    with pytest.raises(ValueError, match="RGB"):
        prepare_images(torch.rand(1, 1, 8, 8), name="T")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prepare_images(torch.rand(1, 3, 8, 8) * 255, name="T")
    with pytest.raises(TypeError, match="uint8"):
        prepare_images(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), name="T")
    with pytest.raises(ValueError, match="divisible by 16"):
        prepare_images(torch.rand(1, 3, 8, 24), name="T", multiple_of=16)
    with pytest.raises(ValueError, match="16x16"):
        prepare_images(torch.rand(1, 3, 8, 8), name="T", size=(16, 16))
    with pytest.raises(ValueError, match="NaN"):
        prepare_images(torch.full((1, 3, 8, 8), float("nan")), name="T")
