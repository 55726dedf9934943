"""WeTok parity against the official code (shared/parity/wetok, README there): plain decoder
(weights.safetensors + `model`) and generative decoder (weights_gd.safetensors + `model_gd`, with the
recorded noise). Only the public API: zoo.convert, encode, encode_latent, tokens_to_codes, decode."""

from __future__ import annotations

import warnings

import pytest
import torch

import zoo
from tests.conftest import parity_dir
from zoo import Tokens

LATENT_ATOL = 1e-5
IMAGE_ATOL, IMAGE_RTOL = 1e-4, 1e-4

CASES = {"plain": ("weights.safetensors", "io.safetensors"), "gd": ("weights_gd.safetensors", "io_gd.safetensors")}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs crawl with 2 OpenMP threads on a loaded shared CPU
    yield
    torch.set_num_threads(n)


def _load(case: str):
    from safetensors.torch import load_file

    weights, io = CASES[case]
    d = parity_dir("wetok")
    model = zoo.convert("wetok", checkpoint=d / weights, config=d / "config.json")
    return model, load_file(str(d / io))


def _to_api(image: torch.Tensor) -> torch.Tensor:
    """Official output in [-1, 1] (unclamped) -> the API's [0, 1], as the official postprocessing does."""
    return (image.clamp(-1, 1) + 1) / 2


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity(case):
    model, ref = _load(case)
    assert model.cfg.generative_decoder == (case == "gd")
    x = (ref["input_image"] + 1) / 2  # fixture is in [-1, 1]; the API takes [0, 1]

    latent = model.encode_latent(x)
    torch.testing.assert_close(latent, ref["encoder_latent"], atol=LATENT_ATOL, rtol=0)

    tokens = model.encode(x)
    expected_ids = ref["token_ids"].permute(0, 3, 1, 2)  # (B, H', W', G) -> ours [B, G, H', W']
    assert torch.equal(tokens.ids, expected_ids)
    assert torch.equal(tokens.ids.permute(0, 2, 3, 1).reshape(-1), ref["token_ids_flat"])  # official order

    codes = model.tokens_to_codes(tokens)
    torch.testing.assert_close(codes, ref["quantized_latent"], atol=LATENT_ATOL, rtol=0)
    torch.testing.assert_close(codes, ref["quantized_latent_from_ids"], atol=LATENT_ATOL, rtol=0)

    kwargs = {"noise": ref["decoder_noise"]} if case == "gd" else {}
    image = model.decode(tokens, **kwargs)
    torch.testing.assert_close(image, _to_api(ref["decoded_image"]), atol=IMAGE_ATOL, rtol=IMAGE_RTOL)
    if case == "plain":
        torch.testing.assert_close(image, _to_api(ref["decoded_image_from_ids"]), atol=IMAGE_ATOL, rtol=IMAGE_RTOL)
    else:
        second = model.decode(tokens, noise=ref["decoder_noise2"])
        torch.testing.assert_close(second, _to_api(ref["decoded_image_noise2"]), atol=IMAGE_ATOL, rtol=IMAGE_RTOL)
        assert (second - image).abs().max() > 0.1  # the noise matters

    # tokens survive a file round trip and decode the same
    again = Tokens(tokens.ids.clone(), layout="2d", meta=dict(tokens.meta))
    torch.testing.assert_close(model.decode(again, **kwargs), image, atol=0, rtol=0)


def test_live_weights_would_fail_parity():
    """The fixture's EMA buffers differ from the live weights: loading the live ones must not match."""
    from zoo.hub import load_state_dict_strict, read_checkpoint
    from zoo.tokenizers.wetok import WeTok, from_official_config, remap_state_dict
    from zoo.hub import read_config_file

    model, ref = _load("plain")
    d = parity_dir("wetok")
    sd, meta = read_checkpoint(d / "weights.safetensors")
    live_only = {k: v for k, v in sd.items() if not k.startswith("model_ema.")}
    cfg = from_official_config(read_config_file(d / "config.json"), live_only, meta)
    assert cfg == model.cfg
    with pytest.warns(UserWarning, match="no EMA weights"):
        ours = remap_state_dict(live_only, cfg)
    live = WeTok(cfg).eval()
    load_state_dict_strict(live, ours)
    x = (ref["input_image"] + 1) / 2
    assert (live.encode_latent(x) - ref["encoder_latent"]).abs().max() > 1e-3
