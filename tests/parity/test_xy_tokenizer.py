"""XY-Tokenizer against the official code's outputs (shared/parity/xy_tokenizer, README there):
zoo.convert on the fixture's files, then the public encode / decode. Stage outputs are read with
forward hooks on our submodules; only valid (unpadded) frames are compared where upstream leaves
padded frames unspecified."""

import pytest
import torch

import zoo
from tests.conftest import parity_dir

ATOL = 1e-4


@pytest.fixture(scope="module")
def fixture():
    from safetensors.torch import load_file

    d = parity_dir("xy_tokenizer")
    model = zoo.convert("xy_tokenizer", checkpoint=d / "weights.safetensors", config=d / "config.json")
    return model, load_file(str(d / "io.safetensors"))


def _hooks(model, names):
    caps, handles = {}, []
    for n in names:
        handles.append(getattr(model, n).register_forward_hook(lambda m, i, o, n=n: caps.__setitem__(n, o)))
    return caps, handles


def _maxdiff(ours, ref, lengths=None):
    if lengths is None:
        return (ours - ref).abs().max().item()
    return max((ours[i, ..., :n] - ref[i, ..., :n]).abs().max().item() for i, n in enumerate(lengths.tolist()))


def test_encode_stages_and_codes_full_window(fixture):
    model, io = fixture
    wav, lens = io["input.wav"], io["input.lengths"]
    names = ["semantic_encoder", "semantic_encoder_adapter", "acoustic_encoder", "pre_rvq_adapter", "downsample", "quantizer_in", "mel"]
    caps, handles = _hooks(model, names)
    try:
        tokens = model.encode(wav[:, None], sample_rate=16000, lengths=lens, full_window=True)
    finally:
        for h in handles:
            h.remove()
    assert _maxdiff(caps["mel"], io["enc.mel"]) < ATOL
    assert _maxdiff(caps["semantic_encoder"][0], io["enc.semantic_encoder_out"]) < ATOL
    assert _maxdiff(caps["semantic_encoder_adapter"], io["enc.semantic_adapter_out"]) < ATOL
    assert _maxdiff(caps["acoustic_encoder"][0], io["enc.acoustic_encoder_out"]) < ATOL
    assert _maxdiff(caps["pre_rvq_adapter"], io["enc.pre_rvq_adapter_out"]) < ATOL
    q_lens = io["enc.downsample_out_lengths"]
    assert _maxdiff(caps["downsample"], io["enc.downsample_out"], q_lens) < ATOL
    assert _maxdiff(caps["quantizer_in"], io["enc.rvq_input_proj_out"], q_lens) < ATOL
    # all 8 layers, exactly, at the API's code count (len // 1280, one fewer than valid for item 1)
    assert tokens.lengths.tolist() == [16, 10]
    assert torch.equal(tokens.ids[0, :, :16], io["api.codes_0"])
    assert torch.equal(tokens.ids[1, :, :10], io["api.codes_1"])
    assert torch.equal(tokens.ids[0], io["enc.codes_full"][:, 0, :16])
    assert int(tokens.ids[1, :, 10:].abs().sum()) == 0  # padded with code 0


def test_short_window_gives_the_same_codes(fixture):
    model, io = fixture
    wav, lens = io["input.wav"], io["input.lengths"]
    fast = model.encode(wav[:, None], sample_rate=16000, lengths=lens)
    assert torch.equal(fast.ids[0, :, :16], io["api.codes_0"])
    assert torch.equal(fast.ids[1, :, :10], io["api.codes_1"])
    # the same clips passed as a list of their own lengths
    listed = model.encode([wav[0], wav[1, :14000]], sample_rate=16000)
    assert torch.equal(listed.ids, fast.ids) and torch.equal(listed.lengths, fast.lengths)


def test_decode_stages_and_waveforms(fixture):
    model, io = fixture
    tokens = zoo.Tokens(
        torch.stack([io["api.codes_0"], torch.nn.functional.pad(io["api.codes_1"], (0, 6))]),
        layout="rvq", lengths=torch.tensor([16, 10]), meta={"family": "xy_tokenizer"},
    )
    caps, handles = _hooks(model, ["quantizer_out", "post_rvq_adapter", "upsample", "acoustic_decoder", "vocos"])
    try:
        y = model.decode(tokens)
    finally:
        for h in handles:
            h.remove()
    c_lens = io["dec.code_lengths"]
    assert _maxdiff(caps["quantizer_out"], io["dec.zq_from_codes"], c_lens) < ATOL
    assert _maxdiff(caps["post_rvq_adapter"], io["dec.post_rvq_adapter_out"]) < ATOL
    assert _maxdiff(caps["upsample"], io["dec.upsample_out"]) < ATOL
    assert _maxdiff(caps["acoustic_decoder"], io["dec.acoustic_decoder_out"]) < ATOL
    assert _maxdiff(caps["vocos"], io["dec.vocos_backbone_out"]) < ATOL
    assert y.shape == (2, 1, 20480)
    assert model.output_lengths(tokens).tolist() == [20480, 12800]
    assert _maxdiff(y[0, 0], io["api.wav_0"]) < ATOL
    assert _maxdiff(y[1, 0, :12800], io["api.wav_1"]) < ATOL
    assert float(y[1, 0, 12800:].abs().max()) == 0.0
