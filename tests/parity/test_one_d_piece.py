"""One-D-Piece parity: our converter + model against the official code's outputs (../shared/parity/one_d_piece).

The fixture holds seeded random weights in the official layout and the official model's tensors
(README.md there). Only the public API is used: zoo.convert, then encode/decode; the intermediate
tensors come from the model's public stage methods (encode_latent, quantize, decode_logits).
"""

from __future__ import annotations

import pytest
import torch

import zoo
from tests.conftest import parity_dir


@pytest.fixture(scope="module")
def io():
    from safetensors.torch import load_file

    return load_file(str(parity_dir("one_d_piece") / "io.safetensors"))


@pytest.fixture(scope="module")
def model():
    d = parity_dir("one_d_piece")
    return zoo.convert("one_d_piece", checkpoint=d / "weights.safetensors", config=d / "config.json")


def _official_latent(z):  # ours [B, N, D] -> official [B, D, 1, N]
    return z.transpose(1, 2)[:, :, None]


def test_tokens_match(model, io):
    tokens = model.encode(io["input_image"])
    assert tokens.layout == "1d" and tokens.ids.shape == (2, 8)
    assert torch.equal(tokens.ids, io["token_ids"][:, 0])


def test_latents_and_logits_match(model, io):
    with torch.inference_mode():
        z = model.encode_latent(io["input_image"])
        zq, ids, _ = model.quantize(z)
        logits = model.decode_logits(zq)
        soft = model.soft_proxy_embedding(logits)
        k = int(io["first_k"][0])
        logits_k = model.decode_logits(zq[:, :k])
        zq_from_ids = model.ids_to_latent(io["token_ids"][:, 0])
    torch.testing.assert_close(_official_latent(z), io["encoder_latent"], atol=1e-5, rtol=0)
    assert torch.equal(ids, io["token_ids"][:, 0])
    torch.testing.assert_close(_official_latent(zq), io["quantized_latent"], atol=1e-5, rtol=0)
    torch.testing.assert_close(_official_latent(zq_from_ids), io["quantized_latent_from_ids"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, io["decoder_proxy_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(soft, io["proxy_soft_embedding"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits_k, io["decoder_proxy_logits_first_k"], atol=1e-4, rtol=1e-4)


def test_images_match(model, io):
    tokens = model.encode(io["input_image"])
    torch.testing.assert_close(model.decode(tokens, clamp=False), io["decoded_image"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.decode(tokens), io["decoded_image_clamped"], atol=1e-4, rtol=1e-4)


def test_first_k_matches(model, io):
    k = int(io["first_k"][0])
    tokens = model.encode(io["input_image"])[:, :k]
    assert torch.equal(tokens.ids, io["first_k_token_ids"][:, 0])
    torch.testing.assert_close(model.decode(tokens, clamp=False), io["decoded_image_first_k"], atol=1e-4, rtol=1e-4)
    # the same prefix through per-item lengths (masked batch decoding) and through encode(num_tokens=k)
    full = model.encode(io["input_image"])
    masked = zoo.Tokens(full.ids, layout="1d", lengths=torch.tensor([k, 8]), meta=full.meta)
    out = model.decode(masked, clamp=False)
    torch.testing.assert_close(out[:1], io["decoded_image_first_k"][:1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1:], io["decoded_image"][1:], atol=1e-4, rtol=1e-4)
    assert torch.equal(model.encode(io["input_image"], num_tokens=k).ids, tokens.ids)
