"""WavTokenizer: contract, converter (every released key layout, any config), bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import zoo
from tests.conftest import parity_dir, parity_files
from zoo import hub, registry
from zoo.api import Tokens
from zoo.tokenizers import wavtokenizer as wt

KEYS_FULL = parity_files("wavtokenizer")
SR = 24000


def _tiny(**overrides) -> wt.WavTokenizer:
    torch.manual_seed(0)
    cfg = dataclasses.replace(wt.TINY_CONFIG, **overrides)
    return wt.WavTokenizer(cfg).eval()


@pytest.fixture(scope="module")
def model():
    return _tiny()


def _audio(b=2, c=1, t=12000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(b, c, t, generator=g)


# ---------------------------------------------------------------------------------------------
# contract
# ---------------------------------------------------------------------------------------------
def test_registry_and_properties(model):
    assert "wavtokenizer" in registry.FAMILIES
    names = zoo.list_models("wavtokenizer*")
    for n in ("wavtokenizer-small-40tps", "wavtokenizer-small-75tps", "wavtokenizer-medium-speech-75tps",
              "wavtokenizer-medium-music-audio-75tps", "wavtokenizer-large-unify-40tps",
              "wavtokenizer-large-speech-75tps", "wavtokenizer-tiny-24k", "wavtokenizer-medium-speech-75tps-v1",
              "wavtokenizer-medium-music-audio-75tps-v1"):
        assert n in names
    spec, v = registry.lookup("wavtokenizer-small-40tps")
    assert spec.name == "wavtokenizer" and v.config.hop_length == 600 and v.pretrained.hub_id == "novateur/WavTokenizer"
    assert registry.lookup("wavtokenizer-small-75tps")[1].config.hop_length == 320
    assert model.codebook_size == 1024 and model.num_codebooks == 1
    assert model.token_rate == SR / 240 and model.modality == "audio"


def test_medium_v1_beside_v2():
    """v1 and v2 medium: same repo, same architecture (75 tokens/s), different files (codes differ)."""
    for domain in ("speech", "music-audio"):
        _, v1 = registry.lookup(f"wavtokenizer-medium-{domain}-75tps-v1")
        _, v2 = registry.lookup(f"wavtokenizer-medium-{domain}-75tps")
        assert v1.pretrained.hub_id == v2.pretrained.hub_id == f"novateur/WavTokenizer-medium-{domain}-75token"
        assert v1.config == v2.config == wt.CONFIG_75TPS
        stem = domain.replace("-", "_")
        assert v1.pretrained.filename == f"wavtokenizer_medium_{stem}_320_24k.ckpt"
        assert v2.pretrained.filename == f"wavtokenizer_medium_{stem}_320_24k_v2.ckpt"


def test_released_configs_have_the_official_rates():
    assert wt.CONFIG_40TPS.hop_length == 600 and wt.CONFIG_40TPS.n_fft == 2400
    assert wt.CONFIG_75TPS.hop_length == 320 and wt.CONFIG_75TPS.n_fft == 1280
    with torch.device("meta"):
        m = wt.WavTokenizer(wt.CONFIG_75TPS)
    assert m.token_rate == 75.0 and m.codebook_size == 4096


def test_encode_decode_shapes_and_trim(model):
    x = _audio(t=12345)  # not a multiple of the hop (240)
    tokens = model.encode(x, sample_rate=SR)
    assert tokens.ids.shape == (2, -(-12345 // 240)) and tokens.ids.dtype == torch.int64
    assert tokens.layout == "1d" and tokens.meta["num_samples"] == 12345 and tokens.meta["family"] == "wavtokenizer"
    assert 0 <= int(tokens.ids.min()) and int(tokens.ids.max()) < model.codebook_size
    y = model.decode(tokens)
    assert y.shape == (2, 1, 12345) and torch.isfinite(y).all()
    # a prefix of the tokens decodes to that many hops
    assert model.decode(tokens[:, :10]).shape == (2, 1, 10 * 240)


def test_deterministic_and_batch_independent(model):
    x = _audio()
    a, b = model.encode(x, sample_rate=SR), model.encode(x, sample_rate=SR)
    assert torch.equal(a.ids, b.ids)
    single = model.encode(x[1:], sample_rate=SR)
    assert torch.equal(single.ids[0], a.ids[1])
    torch.testing.assert_close(model.decode(a)[1:], model.decode(single), atol=1e-5, rtol=0)


def test_resampling_and_mono(model):
    x = _audio(c=2, t=16000)
    with pytest.raises(ValueError, match="mono=True"):
        model.encode(x, sample_rate=16000)
    tokens = model.encode(x, sample_rate=16000, mono=True)
    assert tokens.meta["num_samples"] == 24000 and tokens.ids.shape == (2, 100)
    assert model.decode(tokens).shape == (2, 1, 24000)


def test_tokens_file_round_trip(model, tmp_path):
    tokens = model.encode(_audio(), sample_rate=SR)
    tokens.save(tmp_path / "t.tokens")
    back = Tokens.load(tmp_path / "t.tokens")
    assert torch.equal(back.ids, tokens.ids) and back.meta == tokens.meta
    torch.testing.assert_close(model.decode(back), model.decode(tokens))


def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    assert isinstance(again, wt.WavTokenizer) and again.cfg == model.cfg
    x = _audio()
    assert torch.equal(again.encode(x, sample_rate=SR).ids, model.encode(x, sample_rate=SR).ids)


def test_eval_never_touches_the_codebook():
    m = _tiny()  # fresh: initialized=False, k-means would run in training
    before = {k: v.clone() for k, v in m.quantizer.state_dict().items()}
    m.encode(_audio(), sample_rate=SR)
    m(_audio())  # forward in eval mode
    for k, v in m.quantizer.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_forward_trains():
    m = _tiny().train()
    out = m(_audio(t=4800))
    assert out.recon.shape == (2, 1, 4800) and "commitment" in out.losses
    assert bool(m.quantizer.initialized)  # k-means ran on the first training batch
    loss = (out.recon - _audio(t=4800)).abs().mean() + out.losses["commitment"]
    loss.backward()
    assert m.encoder.model[0].conv.parametrizations.weight.original1.grad is not None  # straight-through
    assert m.backbone.embed.weight.grad is not None


# ---------------------------------------------------------------------------------------------
# converter
# ---------------------------------------------------------------------------------------------
def _read_tsv(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


@pytest.mark.parametrize("tsv", KEYS_FULL, ids=[p.stem for p in KEYS_FULL])
def test_keys_full_layouts_convert(tsv):
    keys = _read_tsv(tsv)
    sd = {k: torch.empty(s, device="meta") for k, s in keys.items()}
    cfg = wt.from_official_config(None, sd, {})
    hop = 600 if tsv.stem.endswith("600") else 320
    expected = wt.CONFIG_40TPS if hop == 600 else wt.CONFIG_75TPS
    assert cfg == expected, (cfg, expected)
    with torch.device("meta"):
        model = wt.WavTokenizer(cfg)
    ours = wt.remap_state_dict(sd, cfg)
    hub.check_state_dict(model, ours, source=tsv.name)  # every parameter/buffer filled, nothing unexpected
    inference = [k for k in keys if not k.startswith(wt.TRAINING_ONLY_PREFIXES)]
    assert len(inference) == len(ours) == len(model.state_dict())
    dropped = {k.split(".")[0] if not k.startswith("feature_extractor.encodec.decoder.") else "encodec.decoder" for k in keys if k.startswith(wt.TRAINING_ONLY_PREFIXES)}
    assert dropped == {"multiperioddisc", "multiresddisc", "dac", "dacdiscriminator", "melspec_loss", "encodec.decoder"}


def _official_state_dict(model: wt.WavTokenizer) -> dict[str, torch.Tensor]:
    """Our weights in the official key layout (the inverse of remap_state_dict), for round trips."""
    inv_vq = {v: k for k, v in wt._VQ_RENAMES.items()}
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("encoder."):
            k = wt._ENC + k[len("encoder."):]
            k = k.replace(".conv.parametrizations.weight.original0", ".conv.conv.weight_g")
            k = k.replace(".conv.parametrizations.weight.original1", ".conv.conv.weight_v")
            k = k.replace(".conv.bias", ".conv.conv.bias")
        elif k.startswith("quantizer."):
            name = k[len("quantizer."):]
            k = wt._VQ + inv_vq[name]
            if name == "initialized":
                v = torch.ones(1)
        out[k] = v.clone()
    out["multiperioddisc.discriminators.0.convs.0.bias"] = torch.zeros(3)  # training-only, dropped
    out["feature_extractor.encodec.decoder.model.0.conv.conv.bias"] = torch.zeros(3)
    return out


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(strides=(2, 3), encoder_filters=4, encoder_dim=32, codebook_size=64, backbone_dim=32,
                  backbone_intermediate_dim=48, backbone_layers=3, n_fft=12, num_groups=8, encoder_lstm_layers=1)],
)
def test_converter_any_config_round_trip(overrides, tmp_path):
    from safetensors.torch import save_file

    src = _tiny(**overrides)
    with torch.no_grad():  # a codebook that is not the random init
        src.quantizer.codebook.normal_()
    save_file(_official_state_dict(src), str(tmp_path / "w.safetensors"))
    conv = zoo.convert("wavtokenizer", checkpoint=tmp_path / "w.safetensors")
    core = lambda c: dataclasses.replace(c, num_groups=0, kmeans_iters=0)  # noqa: E731 (not stored in weights)
    assert core(conv.cfg) == core(src.cfg)
    x = _audio(t=3000)
    assert torch.equal(conv.encode(x, sample_rate=SR).ids, src.encode(x, sample_rate=SR).ids)


def test_official_yaml_config_is_read():
    yaml_like = {"model": {"class_path": "decoder.experiment.WavTokenizer", "init_args": {
        "sample_rate": 24000,
        "feature_extractor": {"init_args": {"dowmsamples": [8, 5, 4, 2], "vq_bins": 4096, "num_quantizers": 1}},
        "backbone": {"init_args": {"input_channels": 512, "dim": 768, "intermediate_dim": 2304, "num_layers": 12,
                                   "adanorm_num_embeddings": 4}},
        "head": {"init_args": {"dim": 768, "n_fft": 1280, "hop_length": 320, "padding": "same"}}}}}
    sd = {k: torch.empty(s, device="meta") for k, s in _read_tsv(parity_dir("wavtokenizer") / "keys_full_small_320.tsv").items()}
    assert wt.from_official_config(yaml_like, sd, {}) == wt.CONFIG_75TPS
    wrong = {"model": {"init_args": {"feature_extractor": {"init_args": {"dowmsamples": [6, 5, 5, 4]}}}}}
    with pytest.raises(ValueError, match="strides"):
        wt.from_official_config(wrong, sd, {})


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, kwargs, err, match",
    [
        (torch.zeros(12000), {"sample_rate": SR}, ValueError, "B, C, T"),
        (torch.zeros(2, 12000), {"sample_rate": SR}, ValueError, "unsqueeze"),
        (torch.zeros(1, 1, 1, 12000), {"sample_rate": SR}, ValueError, "B, C, T"),
        (torch.zeros(2, 1, 12000), {}, ValueError, "sample_rate"),
        (torch.zeros(2, 1, 12000, dtype=torch.int16), {"sample_rate": SR}, TypeError, "float"),
        (torch.full((2, 1, 12000), float("nan")), {"sample_rate": SR}, ValueError, "NaN"),
        (torch.zeros(2, 1, 0), {"sample_rate": SR}, ValueError, "empty"),
        (torch.zeros(0, 1, 100), {"sample_rate": SR}, ValueError, "empty"),
        (torch.zeros(2, 2, 12000), {"sample_rate": SR}, ValueError, "channel"),
        ([0.0] * 100, {"sample_rate": SR}, TypeError, "tensors"),
    ],
)
def test_bad_audio(model, x, kwargs, err, match):
    with pytest.raises(err, match=match):
        model.encode(x, **kwargs)


def test_bad_tokens(model):
    with pytest.raises(ValueError, match=r"\[0, 1023\]"):
        model.decode(Tokens(torch.full((1, 5), 1024)))
    with pytest.raises(ValueError, match=r"\[0, 1023\]"):
        model.decode(Tokens(torch.full((1, 5), -1)))
    with pytest.raises(TypeError, match="zoo.Tokens"):
        model.decode(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="flextok"):
        model.decode(Tokens(torch.zeros(1, 5, dtype=torch.long), meta={"family": "flextok"}))
    with pytest.raises(ValueError, match="1d tokens"):
        model.decode(Tokens(torch.zeros(1, 2, 5, dtype=torch.long), layout="rvq"))
    with pytest.raises(ValueError, match="empty"):
        model.decode(Tokens(torch.zeros(1, 0, dtype=torch.long)))


def test_short_input_encodes(model):
    """Inputs shorter than the reflect padding are zero-extended first (as upstream) and still give one token."""
    tokens = model.encode(_audio(t=5), sample_rate=SR)
    assert tokens.ids.shape == (2, 1) and model.decode(tokens).shape == (2, 1, 5)


def test_mismatched_checkpoints(tmp_path):
    from safetensors.torch import save_file

    sd = _official_state_dict(_tiny())
    bad = dict(sd, **{"feature_extractor.encodec.something_new": torch.zeros(2)})
    save_file(bad, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match="unexpected keys"):
        zoo.convert("wavtokenizer", checkpoint=tmp_path / "extra.safetensors")
    missing = {k: v for k, v in sd.items() if k != "backbone.final_layer_norm.weight"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="missing keys"):
        zoo.convert("wavtokenizer", checkpoint=tmp_path / "missing.safetensors")
    uninit = dict(sd, **{wt._VQ + "inited": torch.zeros(1)})
    save_file(uninit, str(tmp_path / "uninit.safetensors"))
    with pytest.raises(ValueError, match="never initialised"):
        zoo.convert("wavtokenizer", checkpoint=tmp_path / "uninit.safetensors")
    save_file({"foo": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a WavTokenizer checkpoint"):
        zoo.convert("wavtokenizer", checkpoint=tmp_path / "other.safetensors")
    wrong_cfg = {"model": {"init_args": {"head": {"init_args": {"n_fft": 2400}}}}}
    with pytest.raises(ValueError, match="n_fft"):
        zoo.convert("wavtokenizer", checkpoint=tmp_path / "extra.safetensors", config=wrong_cfg)


def test_bad_config():
    with pytest.raises(ValueError, match="n_fft"):
        wt.WavTokenizerConfig(n_fft=601)
    with pytest.raises(ValueError, match="bandwidth_id"):
        wt.WavTokenizerConfig(bandwidth_id=7)
    with pytest.raises(ValueError, match="no field"):
        wt.WavTokenizer.config_from_dict({"hop": 600})


# ---------------------------------------------------------------------------------------------
# speed paths: same results
# ---------------------------------------------------------------------------------------------
def test_encoder_item_chunking_matches_one_pass():
    m = _tiny()
    x = _audio(b=3, t=4800)
    with torch.no_grad():
        ref = m.encoder(x)  # small batch: one pass
    m.encoder.chunk_elements = m.cfg.encoder_filters * 4800  # one item per chunk
    with torch.inference_mode():
        chunked = m.encoder(x)
    torch.testing.assert_close(chunked, ref, atol=1e-5, rtol=0)


def test_bfloat16_model_runs_and_returns_fp32_audio():
    m = _tiny()
    x = _audio(t=4800)
    ref = m.decode(m.encode(x, sample_rate=SR))
    mb = _tiny().to(torch.bfloat16)
    tokens = mb.encode(x, sample_rate=SR)
    y = mb.decode(tokens)
    assert y.dtype == torch.float32 and y.shape == ref.shape and torch.isfinite(y).all()
    assert (y - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


def test_lightning_ckpt_is_read(tmp_path):
    """Released files are Lightning pickles: {'state_dict': {...}, 'epoch': ..., ...}, read with weights_only."""
    src = _tiny()
    torch.save({"state_dict": _official_state_dict(src), "epoch": 3, "global_step": 10}, tmp_path / "w.ckpt")
    conv = zoo.convert("wavtokenizer", checkpoint=tmp_path / "w.ckpt")
    x = _audio(t=2400)
    assert torch.equal(conv.encode(x, sample_rate=SR).ids, src.encode(x, sample_rate=SR).ids)
    flat = {"state_dict." + k: v for k, v in _official_state_dict(src).items()}
    assert wt.from_official_config(None, flat, {}).strides == src.cfg.strides


# ---------------------------------------------------------------------------------------------
# mixed lengths
# ---------------------------------------------------------------------------------------------
def _mixed(model, lens=(12000, 7777, 12000, 4801), sr=SR, seed=3):
    x = _audio(b=len(lens), t=max(lens), seed=seed)
    for i, n in enumerate(lens):
        x[i, :, n:] = 0.5  # garbage in the padding: it must not matter
    return x, list(lens)


def test_mixed_lengths_equal_items_alone(model):
    x, lens = _mixed(model)
    tokens = model.encode(x, sample_rate=SR, lengths=lens)
    hop = model.hop_length
    assert tokens.lengths.tolist() == [-(-n // hop) for n in lens]
    assert tokens.meta["num_samples"] == lens and tokens.ids.shape == (4, -(-max(lens) // hop))
    audio = model.decode(tokens)
    assert audio.shape == (4, 1, max(lens))
    for i, n in enumerate(lens):
        alone = model.encode(x[i : i + 1, :, :n], sample_rate=SR)
        k = int(tokens.lengths[i])
        assert torch.equal(tokens.ids[i, :k], alone.ids[0]), i  # padding never changes an item's codes
        assert int(tokens.ids[i, k:].abs().sum()) == 0
        torch.testing.assert_close(audio[i : i + 1, :, :n], model.decode(alone), atol=1e-6, rtol=0)
        assert not audio[i, :, n:].any()
    # a list of clips is the same call
    listed = model.encode([x[i, :, :n] for i, n in enumerate(lens)], sample_rate=SR)
    assert torch.equal(listed.ids, tokens.ids) and torch.equal(listed.lengths, tokens.lengths)
    # slicing the batch keeps per-item num_samples; the Tokens file keeps lengths
    sub = tokens[1:3]
    assert sub.meta["num_samples"] == lens[1:3] and sub.lengths.tolist() == tokens.lengths[1:3].tolist()
    torch.testing.assert_close(model.decode(sub), audio[1:3, :, : max(lens[1:3])], atol=1e-6, rtol=0)


def test_mixed_lengths_resampled_per_item(model):
    x, lens = _mixed(model, lens=(16000, 9000), sr=16000)
    tokens = model.encode(x, sample_rate=16000, lengths=lens)
    for i, n in enumerate(lens):
        alone = model.encode(x[i : i + 1, :, :n], sample_rate=16000)
        assert tokens.meta["num_samples"][i] == alone.meta["num_samples"]
        assert torch.equal(tokens.ids[i, : int(tokens.lengths[i])], alone.ids[0])


def test_padding_without_lengths_changes_the_last_codes():
    """Why lengths= exists: zero padding reaches an item's last codes (convs look right, reflect pad)."""
    m = _tiny()
    x = _audio(b=1, t=9600, seed=5)
    alone = m.encode(x, sample_rate=SR).ids[0]
    padded = m.encode(torch.nn.functional.pad(x, (0, 4800)), sample_rate=SR).ids[0, : alone.numel()]
    diff = (alone != padded).nonzero().flatten().tolist()
    assert all(i >= alone.numel() - 4 for i in diff)  # only the last few frames can change


@pytest.mark.parametrize(
    "lengths, match",
    [([12000], "2 integers"), ([12000, 0], r"lie in \[1, 12000\]"), ([12000, 12001], r"lie in \[1, 12000\]"),
     ([1.5, 2.0], "integers")],
)
def test_bad_lengths(model, lengths, match):
    with pytest.raises(ValueError, match=match):
        model.encode(_audio(), sample_rate=SR, lengths=lengths)


def test_bad_clip_list(model):
    with pytest.raises(ValueError, match="empty list"):
        model.encode([], sample_rate=SR)
    with pytest.raises(ValueError, match="only with a padded batch"):
        model.encode([torch.zeros(1, 4800)], sample_rate=SR, lengths=[4800])
    with pytest.raises(ValueError, match="channel counts"):
        model.encode([torch.zeros(1, 4800), torch.zeros(2, 4800)], sample_rate=SR)
    with pytest.raises(ValueError, match=r"lengths must lie in \[[01], 2\]"):
        model.decode(Tokens(ids=torch.zeros(1, 2, dtype=torch.long), lengths=[3], meta={"family": "wavtokenizer"}))


def test_chunked_decode(model):
    tokens = model.encode(_audio(t=24000), sample_rate=SR)  # 100 tokens
    full = model.decode(tokens)
    assert torch.equal(model.decode(tokens, chunk_tokens=100), full)  # one window: the one-pass result
    y = model.decode(tokens, chunk_tokens=40, overlap_tokens=10)
    assert y.shape == full.shape and torch.isfinite(y).all()
    # the cross-fade weights sum to one: a window's own audio comes back where no other overlaps it
    alone = model.decode(tokens[:, :40])[..., : 30 * model.hop_length]
    torch.testing.assert_close(y[..., : 30 * model.hop_length], alone, atol=1e-6, rtol=0)
    mixed = model.encode(_audio(b=2, t=24000), sample_rate=SR, lengths=[24000, 9000])
    assert model.decode(mixed, chunk_tokens=40).shape == (2, 1, 24000)
    for c, o in ((0, None), (10, 10), (10, -1)):
        with pytest.raises(ValueError, match="chunk_tokens must be"):
            model.decode(tokens, chunk_tokens=c, overlap_tokens=o)


def test_attention_prelude_memory_is_linear_in_length():
    """A 10-minute clip is 60,000 frames at 100 tokens/s: attention weights L x L would take 14 GB.
    The prelude must run SDPA's fused kernel (contiguous q, k, v), which never materialises them."""
    import subprocess
    import sys

    code = (
        "import resource, torch\n"
        "from zoo.blocks.vocos import AttnBlock1d\n"
        "blk = AttnBlock1d(64, num_groups=8).eval()\n"
        "x = torch.randn(1, 64, 16000)\n"
        "with torch.inference_mode(): blk(x[..., :100])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "with torch.inference_mode(): blk(x)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grew_mb = float(out.stdout.strip().splitlines()[-1])
    assert grew_mb < 300, f"attention over 16,000 frames grew the process by {grew_mb:.0f} MB (L x L is 1,024 MB)"


def test_long_items_encode_in_windows_as_in_one_pass(model):
    """A long clip's conv stack runs in windows with a receptive-field margin: same ids as one pass."""
    x = _audio(t=24000 * 3 + 77)
    enc = model.encoder
    with torch.inference_mode():
        one_pass = enc.model(x)  # no windows
    saved = enc.chunk_elements
    try:
        enc.chunk_elements = enc.model[0].conv.out_channels * 5000  # windows of a few thousand samples
        with torch.inference_mode():
            windowed = enc(x)
        tokens = model.encode(x, sample_rate=SR)
    finally:
        enc.chunk_elements = saved
    assert windowed.shape == one_pass.shape
    torch.testing.assert_close(windowed, one_pass, atol=1e-6, rtol=0)
    assert torch.equal(tokens.ids, model.encode(x, sample_rate=SR).ids)


def test_long_items_run_small_late_layers_in_one_pass(model):
    """With windows, the layers after the first strided conv whose output fits in chunk_elements run in one
    pass over the joined windows: the same latent as the plain stack, the same ids."""
    x = _audio(t=24000 * 3 + 77)
    enc = model.encoder
    saved = enc.chunk_elements
    try:
        enc.chunk_elements = enc.model[0].conv.out_channels * 15000  # windows of ~15,000 samples
        split = enc._windowed_layers(x.shape[-1])
        assert 0 < split < enc._num_conv_layers
        with torch.inference_mode():
            windowed = enc(x)
            plain = enc.model(x)
            ids = model.encode(x, sample_rate=SR).ids
    finally:
        enc.chunk_elements = saved
    torch.testing.assert_close(windowed, plain, atol=1e-6, rtol=0)
    assert torch.equal(ids, model.encode(x, sample_rate=SR).ids)


@pytest.mark.parametrize("t, chunk", [(24000 * 3 + 77, 1000), (5000, 123), (700, 50), (12000, 12000)])
def test_stream_encoder_equals_offline_ids(model, t, chunk):
    x = _audio(t=t)
    offline = model.encode(x, sample_rate=SR)
    stream = model.stream_encoder()
    parts = [stream.push(x[..., p : p + chunk]) for p in range(0, t, chunk)]
    last = stream.flush()
    ids = torch.cat([p.ids for p in parts] + [last.ids], dim=1)
    assert torch.equal(ids, offline.ids)
    assert last.meta["num_samples"] == t
    # frames come out as soon as the lookahead allows: never more than lookahead + one chunk behind
    pushed, emitted = 0, 0
    stream = model.stream_encoder()
    for p in range(0, t, chunk):
        pushed += x[..., p : p + chunk].shape[-1]
        emitted += stream.push(x[..., p : p + chunk]).ids.shape[1]
        assert emitted * model.hop_length >= pushed - stream.lookahead_samples - model.hop_length


def test_stream_decoder_equals_windowed_decode(model):
    tokens = model.encode(_audio(t=24000 * 2), sample_rate=SR)  # 200 tokens
    offline = model.decode(tokens, chunk_tokens=48, overlap_tokens=12)
    stream = model.stream_decoder(chunk_tokens=48, overlap_tokens=12)
    pieces = [stream.push(tokens.ids[:, p : p + 7]) for p in range(0, 200, 7)] + [stream.flush()]
    audio = torch.cat(pieces, dim=-1)
    assert torch.equal(audio[:, None, : offline.shape[-1]], offline)
    with pytest.raises(ValueError, match="nothing to flush"):
        stream.flush()
    with pytest.raises(ValueError, match="overlap_tokens < chunk_tokens"):
        model.stream_decoder(chunk_tokens=4, overlap_tokens=4)


def test_stream_encoder_refuses_other_rates_and_shapes(model):
    stream = model.stream_encoder()
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        stream.push(torch.zeros(100))
    with pytest.raises(ValueError, match="nothing to flush"):
        model.stream_encoder().flush()
