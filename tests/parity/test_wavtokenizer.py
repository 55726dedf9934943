"""WavTokenizer against the official code's recorded outputs (../shared/parity/wavtokenizer/).

Public API only: zoo.convert(...) on the fixture's files as they are, then encode / decode with
audio [B, 1, T] and sample_rate=. Tolerances from the fixture README: codes exact; latent, features,
backbone and head outputs within 1e-4; audio within 1e-5.
"""

from __future__ import annotations

import pytest
import torch

import zoo
from tests.conftest import parity_dir


@pytest.fixture(scope="module")
def fixture():
    from safetensors.torch import load_file

    d = parity_dir("wavtokenizer")
    model = zoo.convert("wavtokenizer", checkpoint=d / "weights.safetensors", config=d / "config.json")
    return model, load_file(str(d / "io.safetensors"))


def test_codes_exact(fixture):
    model, io = fixture
    tokens = model.encode(io["audio_in"][:, None, :], sample_rate=24000)  # fixture is [B, T]; API is [B, 1, T]
    assert tokens.layout == "1d"
    assert torch.equal(tokens.ids, io["codes"][0])  # official layout [n_q=1, B, N]


def test_stages_within_tolerance(fixture):
    model, io = fixture
    x = io["audio_in"][:, None, :]
    with torch.inference_mode():
        latent = model.encode_latent(x)
        features = model.ids_to_features(io["codes"][0])
        backbone = model.backbone(features, io["bandwidth_id"])
        head_linear = model.head.out(backbone)
    torch.testing.assert_close(latent, io["encoder_latent"], atol=1e-4, rtol=0)
    torch.testing.assert_close(features, io["features"], atol=1e-4, rtol=0)
    torch.testing.assert_close(features, io["features_from_codes"], atol=1e-4, rtol=0)
    torch.testing.assert_close(backbone, io["backbone_out"], atol=1e-4, rtol=0)
    torch.testing.assert_close(head_linear, io["head_linear_out"], atol=1e-4, rtol=0)


def test_audio_within_tolerance(fixture):
    model, io = fixture
    tokens = model.encode(io["audio_in"][:, None, :], sample_rate=24000)
    audio = model.decode(tokens)
    assert audio.shape == (2, 1, io["audio_out"].shape[-1])
    torch.testing.assert_close(audio[:, 0], io["audio_out"], atol=1e-5, rtol=0)


def test_converted_model_round_trips_through_save(fixture, tmp_path):
    model, io = fixture
    model.save_pretrained(tmp_path / "converted")
    again = zoo.load(tmp_path / "converted")
    x = io["audio_in"][:, None, :]
    assert torch.equal(again.encode(x, sample_rate=24000).ids, io["codes"][0])
