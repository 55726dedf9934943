"""Issue 22, point 4: sizes are bounded before memory is spent. Absurd sample rates, images declaring
too many pixels or an extreme aspect ratio, and configs far larger than their weights are refused with a
sentence. (Long audio is not chunked: a very long clip still decodes in one piece.)"""

import json
import time

import pytest
import torch

from reliability_helpers import AUDIO_MODEL, files_under, png_header_only, toy_folder, wav_with_rate
from zoo import cli, hub, media


@pytest.mark.parametrize("rate", [1, 8, 999, 384001, 10**7])
def test_wav_declaring_an_absurd_rate_is_refused_before_resampling(tmp_path, rate):
    p = wav_with_rate(tmp_path / "odd.wav", rate)
    assert p.stat().st_size < 2000
    with pytest.raises(ValueError, match=r"odd\.wav has a sample rate of .* zoo accepts 1000 to 384000 Hz"):
        media.load_audio(p)


@pytest.mark.parametrize("rate", [1000, 8000, 384000])
def test_wav_at_an_ordinary_rate_reads(tmp_path, rate):
    x, sr = media.load_audio(wav_with_rate(tmp_path / "ok.wav", rate))
    assert sr == rate and x.shape == (1, 600)


def test_cli_refuses_a_1_hz_wav_quickly_and_goes_on(tmp_path, capsys):
    wav_with_rate(tmp_path / "data" / "one_hz.wav", 1)
    wav_with_rate(tmp_path / "data" / "fine.wav", 24000, n=2400)
    t = time.perf_counter()
    rc = cli.main(["reconstruct", AUDIO_MODEL, str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q"])
    assert time.perf_counter() - t < 30
    assert rc == 1 and "one_hz.wav has a sample rate of 1 Hz" in capsys.readouterr().err
    assert files_under(tmp_path / "out") == ["fine.wav"]


@pytest.mark.parametrize("rate", [0, 1, -16000, 10**6, 16000.5, float("nan"), "16000", True])
def test_encode_refuses_an_absurd_sample_rate_argument(rate):
    import zoo

    tok = zoo.load(AUDIO_MODEL)
    with pytest.raises(ValueError, match="sample rate"):
        tok.encode(torch.zeros(1, 1, 2400), sample_rate=rate)


@pytest.mark.parametrize("w,h", [(100000, 100000), (20000, 20000), (65000, 65000), (1, 2**27)])
def test_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, w, h):
    p = png_header_only(tmp_path / "big.png", w, h)
    with pytest.raises(ValueError, match=r"big\.png (is \d+x\d+ pixels|declares too many pixels)"):
        media.load_image(p)


def test_extreme_aspect_ratio_is_refused_before_resizing(toy_registry, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "data").mkdir()
    Image.new("RGB", (300000, 1), (10, 20, 30)).save(tmp_path / "data" / "strip.png")
    model = toy_folder(tmp_path)
    rc = cli.main(["reconstruct", str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1
    assert "strip.png" in (err := capsys.readouterr().err) and "less extreme aspect ratio" in err
    with pytest.raises(ValueError, match="would be 16x4800000 pixels"):
        media.resize_center_crop(torch.zeros(3, 1, 300000), 16)


@pytest.mark.parametrize("field,value", [("dim", 10**9), ("codebook_size", 10**10), ("patch", 1)])
def test_config_far_from_its_weights_is_refused_before_allocation(toy_registry, tmp_path, field, value):
    folder = toy_folder(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["config"][field] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    t = time.perf_counter()
    with pytest.raises(ValueError, match="does not match ToyTokenizer"):
        hub.load_folder(folder)
    assert time.perf_counter() - t < 10


def test_config_with_absurd_buffers_is_refused(toy_registry, tmp_path, monkeypatch):
    """Non-persistent buffers (windows, filterbanks) are not in the weights: their total is bounded too."""
    from toy_family import ToyTokenizer

    folder = toy_folder(tmp_path)
    real_init = ToyTokenizer.__init__

    def init(self, cfg):
        real_init(self, cfg)
        self.register_buffer("window", torch.zeros(2**29), persistent=False)

    monkeypatch.setattr(ToyTokenizer, "__init__", init)
    with pytest.raises(ValueError, match="would allocate .* values beyond its weights"):
        hub.load_folder(folder)
