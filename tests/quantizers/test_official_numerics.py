"""The shared quantizers against the official codes' recorded numerics (the family parity fixtures).

Each test builds one zoo quantizer, fills it from the fixture's official weights (a hand mapping
here; the families' `remap_state_dict` do the same), feeds it the recorded pre-quantization latent and
checks the recorded ids (exact) and quantized tensors. Fixtures: conftest's parity_dir(family).
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from tests.conftest import parity_dir
from zoo.quantizers import FSQ, LFQ, ResidualVQ, VectorQuantizer


def fixture(family: str, name: str = "io.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(parity_dir(family) / name))


def test_fsq_matches_flextok():
    io = fixture("flextok")
    fsq = FSQ([8, 8, 8, 5, 5, 5]).eval()
    with torch.no_grad():
        out = fsq(io["enc_registers_prequant"])  # [2, 8, 6]
    assert torch.equal(out.ids, io["tokens"])
    torch.testing.assert_close(out.quantized, io["fsq_quant"], atol=1e-6, rtol=0)
    torch.testing.assert_close(fsq.ids_to_codes(io["tokens"]), io["fsq_quant"], atol=1e-6, rtol=0)
    # detokenize: keep the first k ids, right-pad with id 0, embed
    k = io["keep_k"]
    ids = torch.where(torch.arange(8)[None] < k[:, None], io["tokens"], 0)
    torch.testing.assert_close(fsq.ids_to_codes(ids), io["dec_quants_in"], atol=1e-6, rtol=0)


def test_cosine_vq_matches_one_d_piece():
    io, w = fixture("one_d_piece"), fixture("one_d_piece", "weights.safetensors")
    codebook = w["quantize.embedding.weight"]  # [128, 12]
    vq = VectorQuantizer(12, codebook.shape[0], cosine=True).eval()
    vq.load_state_dict({"codebook": codebook, "cluster_size": torch.ones(codebook.shape[0]), "initialized": torch.tensor(True)})
    z = io["encoder_latent"][:, :, 0].transpose(1, 2)  # [B, 12, 1, N] -> [B, N, 12]
    with torch.no_grad():
        out = vq(z)
    assert torch.equal(out.ids, io["token_ids"][:, 0])
    want = io["quantized_latent"][:, :, 0].transpose(1, 2)
    torch.testing.assert_close(out.quantized, want, atol=1e-5, rtol=0)
    from_ids = io["quantized_latent_from_ids"][:, :, 0].transpose(1, 2)
    torch.testing.assert_close(vq.ids_to_quantized(io["token_ids"][:, 0]), from_ids, atol=1e-5, rtol=0)


def test_cosine_ema_vq_matches_selftok():
    io, w = fixture("selftok"), fixture("selftok", "weights.safetensors")
    p = "encoder.quantizer."
    codebook = w[p + "_codebook.embed"][0]  # [64, 16]
    vq = VectorQuantizer(64, codebook.shape[0], 16, cosine=True, ema_decay=0.99).eval()
    vq.project_in.weight.data.copy_(w[p + "project_in.weight"])
    vq.project_in.bias.data.copy_(w[p + "project_in.bias"])
    vq.codebook.copy_(codebook)
    with torch.no_grad():
        out = vq(io["enc_features"])
        torch.testing.assert_close(vq.project_in(io["enc_features"]), io["enc_projected"], atol=1e-5, rtol=0)
    assert torch.equal(out.ids, io["token_ids"])
    torch.testing.assert_close(vq.ids_to_codes(io["token_ids"]), io["codebook_lookup"], atol=1e-5, rtol=0)


def test_euclidean_ema_vq_matches_wavtokenizer():
    io, w = fixture("wavtokenizer"), fixture("wavtokenizer", "weights.safetensors")
    p = "feature_extractor.encodec.quantizer.vq.layers.0._codebook."
    vq = VectorQuantizer(64, 4096, ema_decay=0.99, kmeans_init=True).eval()
    vq.load_state_dict({
        "codebook": w[p + "embed"], "embed_sum": w[p + "embed_avg"], "cluster_size": w[p + "cluster_size"],
        "initialized": w[p + "inited"].bool().reshape(()),
    })
    z = io["encoder_latent"].transpose(1, 2)  # [B, D, T] -> [B, T, D]
    with torch.no_grad():
        out = vq(z)
    assert torch.equal(out.ids, io["codes"][0])
    torch.testing.assert_close(out.quantized.transpose(1, 2), io["features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(vq.ids_to_quantized(io["codes"][0]).transpose(1, 2), io["features_from_codes"], atol=1e-5, rtol=0)


def test_group_lfq_matches_wetok():
    io = fixture("wetok")
    lfq = LFQ(4, 4).eval()
    z = io["encoder_latent"].permute(0, 2, 3, 1)  # [B, C, H, W] -> [B, H, W, C]
    with torch.no_grad():
        out = lfq(z)
    assert torch.equal(out.ids, io["token_ids"])
    assert torch.equal(out.ids.reshape(-1), io["token_ids_flat"])  # (b, h, w, g) order
    torch.testing.assert_close(out.quantized.permute(0, 3, 1, 2), io["quantized_latent"], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        lfq.ids_to_quantized(io["token_ids"]).permute(0, 3, 1, 2), io["quantized_latent_from_ids"], atol=1e-6, rtol=0
    )


def test_residual_vq_matches_xy_tokenizer():
    io, w = fixture("xy_tokenizer"), fixture("xy_tokenizer", "weights.safetensors")
    nq = 8
    rvq = ResidualVQ(32, nq, 64, ema_decay=0.99).eval()
    sd = {}
    for i in range(nq):
        p = f"quantizer.quantizers.{i}."
        sd[f"layers.{i}.codebook"] = w[p + "codebook"]
        sd[f"layers.{i}.embed_sum"] = w[p + "embed_avg"]
        sd[f"layers.{i}.cluster_size"] = w[p + "cluster_size"]
        sd[f"layers.{i}.initialized"] = w[p + "inited"].bool().reshape(())
    rvq.load_state_dict(sd)
    z = io["enc.rvq_input_proj_out"].transpose(1, 2)  # [B, 32, T] -> [B, T, 32]
    with torch.no_grad():
        out = rvq(z)
    lengths = io["enc.downsample_out_lengths"]
    codes = io["enc.codes_full"].permute(1, 2, 0)  # [Q, B, T] -> [B, T, Q]
    per_layer = io["enc.rvq_all_quantized"].permute(1, 3, 0, 2)  # [Q, B, D, T] -> [B, T, Q, D]
    for b, n in enumerate(lengths.tolist()):  # only the first `lengths` frames are meaningful
        assert torch.equal(out.ids[b, :n], codes[b, :n])
        torch.testing.assert_close(rvq.ids_to_codes(out.ids)[b, :n], per_layer[b, :n], atol=1e-5, rtol=0)
    # decoding any prefix of layers = the sum of those layers' vectors
    torch.testing.assert_close(rvq.ids_to_quantized(out.ids[..., :3]), rvq.ids_to_codes(out.ids)[..., :3, :].sum(-2))
