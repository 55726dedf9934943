"""Issue 22, point 6: input that used to be read wrong without a word is read right or refused."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from reliability_helpers import AUDIO_MODEL, files_under, toy_folder, wav
from zoo import cli, media
from zoo.api import Tokens


def _save_pil(path, arr, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.mark.parametrize("value", [0, 1000, 32768, 65535])
def test_16_bit_png_is_scaled_not_read_as_white(tmp_path, value):
    p = _save_pil(tmp_path / "g16.png", np.full((8, 8), value, dtype=np.uint16), "PNG")
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # Pillow opens it as a 16/32-bit integer image
    x = media.load_image(p)
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.full_like(x, value / 65535), atol=1e-6)


@pytest.mark.parametrize("value", [0.0, 0.25, 1.0])
def test_float_tiff_in_range_is_read_not_black(tmp_path, value):
    p = _save_pil(tmp_path / "f.tif", np.full((4, 4), value, dtype=np.float32), "TIFF")
    assert torch.allclose(media.load_image(p), torch.full((3, 4, 4), value))


@pytest.mark.parametrize("values", [(-0.5, 0.5), (0.0, 3.0), (0.0, float("nan"))])
def test_float_tiff_out_of_range_is_refused(tmp_path, values):
    arr = np.array([[values[0], values[1]]], dtype=np.float32)
    p = _save_pil(tmp_path / "f.tif", arr, "TIFF")
    with pytest.raises(ValueError, match=r"f\.tif is a float image"):
        media.load_image(p)


def test_8_bit_images_read_as_before(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    p = _save_pil(tmp_path / "rgb.png", arr, "PNG")
    assert torch.equal(media.load_image(p), torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0)
    gray = _save_pil(tmp_path / "l.png", arr[..., 0], "PNG")
    assert torch.equal(media.load_image(gray)[1], torch.from_numpy(arr[..., 0]).float() / 255.0)


@pytest.mark.parametrize("peak", [2.5, 40000.0])
def test_audio_far_outside_minus_one_one_is_refused(peak):
    import zoo

    tok = zoo.load(AUDIO_MODEL)
    x = torch.zeros(1, 1, 2400)
    x[..., 10] = peak
    with pytest.raises(ValueError, match=r"expects audio in \[-1, 1\]; got a peak"):
        tok.encode(x, sample_rate=24000)
    x[..., 10] = 1.0  # full scale is fine
    assert tok.encode(x, sample_rate=24000).ids.shape[0] == 1


@pytest.mark.parametrize("peak", [1.01, 1.7, 300.0])
def test_loud_float_wav_is_refused_by_file_name(tmp_path, capsys, peak):
    wav(tmp_path / "data" / "loud.wav", peak=peak)
    wav(tmp_path / "data" / "full_scale.wav", peak=1.0)
    with pytest.raises(ValueError, match=r"loud\.wav holds float samples up to .*; zoo reads audio in \[-1, 1\]"):
        media.load_audio(tmp_path / "data" / "loud.wav")
    rc = cli.main(["reconstruct", AUDIO_MODEL, str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1 and "loud.wav" in capsys.readouterr().err
    assert files_under(tmp_path / "out") == ["full_scale.wav"]


def test_pcm_wav_at_full_scale_reads(tmp_path):
    x, _ = media.load_audio(wav(tmp_path / "pcm.wav", peak=1.0, subtype="PCM_16"))
    assert float(x.abs().max()) <= 1.0


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_wav_is_refused_not_encoded_in_part(tmp_path, keep):
    full = wav(tmp_path / "full.wav", seconds=0.2, subtype="PCM_16").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[: int(len(full) * keep)])
    with pytest.raises(ValueError, match=r"cut\.wav is a truncated WAV"):
        media.load_audio(cut)
    x, sr = media.load_audio(tmp_path / "full.wav")  # the complete file still reads
    assert x.shape == (1, 4800) and sr == 24000


def test_tokens_without_family_are_refused_by_zoo_decode(toy_registry, tmp_path, capsys):
    model = toy_folder(tmp_path)
    Tokens(torch.zeros(1, 16, dtype=torch.long)).save(tmp_path / "toks" / "bare.tokens")
    rc = cli.main(["decode", str(model), str(tmp_path / "toks"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1 and "carry no family" in capsys.readouterr().err
    assert files_under(tmp_path / "out") == []


def test_audio_tokens_decoded_by_an_image_model_are_refused(toy_registry, tmp_path, capsys):
    import zoo

    tok = zoo.load(AUDIO_MODEL)
    tok.encode(torch.zeros(1, 1, 2400), sample_rate=24000).save(tmp_path / "toks" / "a.tokens")
    rc = cli.main(["decode", str(toy_folder(tmp_path)), str(tmp_path / "toks"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1 and "made by a 'wavtokenizer' tokenizer" in capsys.readouterr().err


def test_another_variants_tokens_are_refused(toy_registry, tmp_path):
    from toy_family import ToyConfig, ToyTokenizer

    m = ToyTokenizer(ToyConfig())
    m.variant = "toy-16"
    t = Tokens(torch.zeros(1, 16, dtype=torch.long), meta={"family": "toy", "variant": "toy-embedded"})
    with pytest.raises(ValueError, match="made by 'toy-embedded'; this model is 'toy-16'"):
        m.decode(t)
    m.decode(Tokens(torch.zeros(1, 16, dtype=torch.long), meta={"family": "toy", "variant": "toy-16"}))
    m.decode(Tokens(torch.zeros(1, 16, dtype=torch.long)))  # hand-made ids (no meta) still decode at the API


def test_tokens_of_another_rate_are_refused():
    import zoo

    tok = zoo.load(AUDIO_MODEL)
    t = tok.encode(torch.zeros(1, 1, 2400), sample_rate=24000)
    for key, value in (("sample_rate", 16000), ("hop_length", 1)):
        bad = Tokens(t.ids, meta=dict(t.meta, **{key: value}))
        with pytest.raises(ValueError, match=f"record {key}={value}"):
            tok.decode(bad)


@pytest.mark.parametrize("layout,shape,lengths", [("1d", (2, 5), [-1, 3]), ("1d", (2, 5), [6, 1]),
                                                  ("rvq", (1, 2, 4), [5]), ("streams", (1, 2, 4), [-3])])
def test_lengths_outside_the_sequence_are_refused(layout, shape, lengths):
    with pytest.raises(ValueError, match="Tokens.lengths must lie in"):
        Tokens(torch.zeros(shape, dtype=torch.long), layout=layout, lengths=lengths)
    Tokens(torch.zeros(shape, dtype=torch.long), layout=layout, lengths=[shape[-1 if layout != "1d" else 1]] * shape[0])


def test_lengths_in_a_file_are_checked(tmp_path):
    from reliability_helpers import tokens_file

    p = tokens_file(tmp_path / "x.tokens", {"ids": torch.zeros(1, 4, dtype=torch.long), "lengths": torch.tensor([9])},
                    {"format": "zoo.tokens", "format_version": "1", "layout": "1d", "meta": "{}"})
    with pytest.raises(ValueError, match=r"x\.tokens is a damaged zoo tokens file: Tokens.lengths must lie in \[0, 4\]"):
        Tokens.load(p)


def test_non_rgb_buffers_of_an_image_are_read(tmp_path):
    # palette and alpha images still go through RGB as before
    arr = np.random.default_rng(1).integers(0, 256, (4, 4, 4), dtype=np.uint8)
    p = _save_pil(tmp_path / "rgba.png", arr, "PNG")
    buf = io.BytesIO(p.read_bytes())
    with Image.open(buf) as im:
        want = np.asarray(im.convert("RGB"))
    assert torch.equal(media.load_image(p), torch.from_numpy(want.copy()).permute(2, 0, 1).float() / 255.0)
