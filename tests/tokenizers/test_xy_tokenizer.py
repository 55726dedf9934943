"""XY-Tokenizer: converter over the released layouts, config parsing, long-clip windows, batching
and bad input. Uses the tiny config (random weights) except where the fixture is named."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import zoo
from tests.conftest import parity_dir
from zoo import hub
from zoo.api import config_to_dict
from zoo.tokenizers import xy_tokenizer as xy


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return xy.XYTokenizer(xy.TINY_CONFIG).eval()


def _meta_state_dict(tsv: Path) -> dict:
    sd = {}
    for line in tsv.read_text().splitlines():
        key, shape = line.split("\t")
        dtype = torch.bool if key.endswith(".inited") else torch.float32
        sd[key] = torch.empty(json.loads(shape), dtype=dtype, device="meta")
    return sd


@pytest.mark.parametrize(
    "tsv, variant",
    [("keys_full.tsv", "xy-tokenizer-16k"), ("keys_full_ttsd_v0_24k.tsv", "xy-tokenizer-ttsd-24k"),
     ("keys_full_ttsd_32k.tsv", "xy-tokenizer-ttsd-32k")],
)
def test_released_layouts_convert_completely(tsv, variant):
    sd = _meta_state_dict(parity_dir("xy_tokenizer") / tsv)
    cfg = xy.from_official_config(None, sd, {})
    expected = next(v for v in xy.VARIANTS if v.name == variant).config
    assert cfg == expected  # every size, the vocoder and the output rate come out of the shapes
    with torch.device("meta"):
        model = xy.XYTokenizer(cfg)
    ours = xy.remap_state_dict(sd, cfg)
    hub.check_state_dict(model, ours, source=tsv)  # every parameter and buffer filled, shapes equal
    assert len(ours) == len(sd)  # every official key consumed (none is training-only)
    assert model.num_parameters() == sum(v.numel() for k, v in sd.items() if "positional" not in k and "window" not in k
                                         and "quantizers" not in k)


def test_unknown_key_fails_strict_loading():
    sd = _meta_state_dict(parity_dir("xy_tokenizer") / "keys_full.tsv")
    sd["discriminator.conv.weight"] = torch.empty(3, device="meta")
    cfg = xy.from_official_config(None, sd, {})
    with torch.device("meta"):
        model = xy.XYTokenizer(cfg)
    with pytest.raises(ValueError, match="discriminator.conv.weight"):
        hub.check_state_dict(model, xy.remap_state_dict(sd, cfg))


def test_hf_port_spellings_are_accepted(tiny):
    official = {}
    for k, v in tiny.state_dict().items():  # build the official gyt layout from ours, then the HF one
        k = k.replace("quantizer_in.parametrizations.weight.original", "quantizer.input_proj.parametrizations.weight.original")
        k = k.replace("quantizer_out.parametrizations.weight.original", "quantizer.output_proj.parametrizations.weight.original")
        k = k.replace("quantizer_in.bias", "quantizer.input_proj.bias").replace("quantizer_out.bias", "quantizer.output_proj.bias")
        k = k.replace("rvq.layers.", "quantizer.quantizers.").replace(".embed_sum", ".embed_avg").replace(".initialized", ".inited")
        k = k.replace(".fc1.", ".mlp.fc1.").replace(".fc2.", ".mlp.fc2.")
        if k.startswith("vocos."):
            k = "enhanced_vocos.backbone." + k[len("vocos."):]
        if k.startswith("head."):
            k = "enhanced_vocos.head." + k[len("head."):]
        official[k] = v
    ours = xy.remap_state_dict(official, tiny.cfg)
    assert set(ours) == set(tiny.state_dict())


def test_fixture_config_and_moss_schema_parse():
    data = json.loads((parity_dir("xy_tokenizer") / "config.json").read_text())
    cfg = xy.from_official_config(data)
    assert cfg.semantic_encoder == xy.StackConfig(80, 64, 64, 2, 4, 128, 1500)
    assert cfg.post_rvq_adapter == xy.StackConfig(256, 64, 256, 1, 4, 128, 375)
    assert (cfg.rvq_dim, cfg.codebook_size, cfg.num_quantizers, cfg.output_sample_rate) == (32, 64, 8, 16000)
    moss = json.loads(json.dumps(data["generator_params"]))
    del moss["sample_rate"]
    moss.update(input_sample_rate=16000, output_sample_rate=24000, encoder_downsample_rate=1280, decoder_upsample_rate=1920)
    moss["vocos_kwargs"].update(n_fft=960, hop_size=240)
    cfg24 = xy.from_official_config({"generator_params": moss})
    assert (cfg24.output_sample_rate, cfg24.output_samples_per_code) == (24000, 1920)
    moss["output_sample_rate"] = 32000
    with pytest.raises(ValueError, match="output_sample_rate"):
        xy.from_official_config({"generator_params": moss})
    with pytest.raises(ValueError, match="official schema"):
        xy.from_official_config({"model": {}})


def test_config_round_trip(tiny):
    data = config_to_dict(tiny.cfg)
    assert xy.XYTokenizer.config_from_dict(data) == tiny.cfg
    with pytest.raises(ValueError, match="no field"):
        xy.XYTokenizer.config_from_dict({**data, "bogus": 1})
    with pytest.raises(ValueError, match="heads"):
        dataclasses.replace(tiny.cfg, semantic_adapter=xy.StackConfig(32, 32, 32, 1, 3, 64, 1500))


def test_mel_filters_match_whisper_shape_and_norm():
    fb = xy.slaney_mel_filters(201, 80, 16000)
    assert fb.shape == (201, 80) and float(fb.min()) >= 0
    # slaney normalisation: each triangle has area ~ 1 in Hz (2 / bandwidth peak over bandwidth / 2)
    area = fb.sum(0) * 40.0  # bin spacing 8000 / 200 Hz
    assert torch.allclose(area[10:], torch.ones(70), atol=0.1)  # sampled triangles: +-8 %


def test_batch_list_and_lengths_agree(tiny):
    g = torch.Generator().manual_seed(0)
    a, b = 0.1 * torch.randn(1, 20000, generator=g), 0.1 * torch.randn(1, 9000, generator=g)
    listed = tiny.encode([a, b], sample_rate=16000)
    padded = torch.zeros(2, 1, 20000)
    padded[0, :, :] = a
    padded[1, :, :9000] = b
    padded[1, :, 9000:] = 0.5  # padding content must not matter
    batched = tiny.encode(padded, sample_rate=16000, lengths=[20000, 9000])
    alone = tiny.encode(b[None], sample_rate=16000)
    assert listed.lengths.tolist() == [15, 7] == batched.lengths.tolist()
    assert torch.equal(listed.ids, batched.ids)
    assert torch.equal(batched.ids[1, :, :7], alone.ids[0])
    y = tiny.decode(batched)
    assert y.shape == (2, 1, 15 * 1280) and float(y[1, :, 7 * 1280:].abs().max()) == 0.0


def test_long_clip_windows_have_no_seam_in_the_token_stream(tiny):
    sr = 16000
    x = 0.1 * torch.randn(1, 1, 35 * sr, generator=torch.Generator().manual_seed(1))
    t = tiny.encode(x, sample_rate=sr)
    assert t.ids.shape == (1, 8, 35 * sr // 1280) and t.lengths.tolist() == [437]
    first = tiny.encode(x[..., : 30 * sr], sample_rate=sr)  # window 0: [0, 30 s) keeps its first 20 s
    second = tiny.encode(x[..., 20 * sr :], sample_rate=sr)  # window 1 starts at 20 s
    assert torch.equal(t.ids[..., :250], first.ids[..., :250])
    assert torch.equal(t.ids[..., 250:], second.ids)
    y = tiny.decode(t)
    assert y.shape == (1, 1, 437 * 1280) and torch.isfinite(y).all()


def test_resampled_input(tiny):
    x = 0.1 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(2))
    t = tiny.encode(x, sample_rate=8000)
    assert t.lengths.tolist() == [16000 // 1280]


@pytest.mark.parametrize(
    "x, kw, err, match",
    [
        (torch.zeros(1, 16000), {"sample_rate": 16000}, ValueError, "unsqueeze"),
        (torch.zeros(1, 2, 16000), {"sample_rate": 16000}, ValueError, "channel"),
        (torch.zeros(1, 1, 16000, dtype=torch.int16), {"sample_rate": 16000}, TypeError, "float"),
        (torch.full((1, 1, 16000), float("nan")), {"sample_rate": 16000}, ValueError, "NaN"),
        (torch.zeros(1, 1, 0), {"sample_rate": 16000}, ValueError, "empty"),
        (torch.zeros(1, 1, 1000), {"sample_rate": 16000}, ValueError, "at least 1280 samples"),
        (torch.zeros(1, 1, 16000), {}, ValueError, "sample_rate"),
        (torch.zeros(2, 1, 16000), {"sample_rate": 16000, "lengths": [16000]}, ValueError, "lengths"),
        (torch.zeros(2, 1, 16000), {"sample_rate": 16000, "lengths": [16000, 20000]}, ValueError, "lengths"),
        ([], {"sample_rate": 16000}, ValueError, "empty list"),
        ([torch.zeros(16000)], {"sample_rate": 16000, "lengths": [3]}, ValueError, "lengths"),
        ("a.wav", {"sample_rate": 16000}, TypeError, "tensors"),
    ],
)
def test_bad_input(tiny, x, kw, err, match):
    with pytest.raises(err, match=match):
        tiny.encode(x, **kw)


def test_bad_tokens(tiny):
    ids = torch.zeros(1, 8, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        tiny.decode(zoo.Tokens(ids + 256, layout="rvq"))
    with pytest.raises(ValueError, match="residual layers"):
        tiny.decode(zoo.Tokens(ids[:, :4], layout="rvq"))
    with pytest.raises(ValueError, match="layout"):
        tiny.decode(zoo.Tokens(ids[:, 0], layout="1d"))
    with pytest.raises(ValueError, match="lengths"):
        tiny.decode(zoo.Tokens(ids, layout="rvq", lengths=[9]))
    with pytest.raises(ValueError, match="made by"):
        tiny.decode(zoo.Tokens(ids, layout="rvq", meta={"family": "wavtokenizer"}))


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    sd = {"semantic_encoder.conv1.weight": torch.zeros(8, 80, 3)}
    save_file(sd, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="XY-Tokenizer checkpoint"):
        zoo.convert("xy_tokenizer", checkpoint=tmp_path / "w.safetensors")


def test_streams_equal_offline_encode_and_decode():
    """Upstream's windows (here 3 s every 2 s, to stay fast): a window is final once its input is in."""
    import dataclasses

    from zoo.tokenizers.xy_tokenizer import TINY_CONFIG, XYTokenizer

    torch.manual_seed(0)
    tok = XYTokenizer(dataclasses.replace(TINY_CONFIG, window_seconds=3, window_hop_seconds=2)).eval()
    sr, t = tok.sample_rate, int(tok.sample_rate * 7.3)
    x = 0.1 * torch.randn(2, 1, t, generator=torch.Generator().manual_seed(0))
    offline = tok.encode(x, sample_rate=sr)
    stream = tok.stream_encoder()
    assert stream.lookahead_samples == 3 * sr
    parts = [stream.push(x[..., p : p + 5000]) for p in range(0, t, 5000)]
    last = stream.flush()
    ids = torch.cat([p.ids for p in parts] + [last.ids], dim=-1)
    assert torch.equal(ids, offline.ids) and last.meta["num_samples"] == t
    audio = tok.decode(offline)
    dec = tok.stream_decoder()
    pieces = [dec.push(ids[..., p : p + 17]) for p in range(0, ids.shape[-1], 17)] + [dec.flush()]
    assert torch.equal(torch.cat(pieces, dim=-1), audio)
