"""Issue 22, point 7: token metadata is not trusted. Damaged .tokens files and shards give one sentence
naming the file; the WAV header carries the model's rate, never the tokens' claim."""

import json

import pytest
import soundfile as sf
import torch

from reliability_helpers import AUDIO_MODEL, files_under, tokens_file, toy_folder
from zoo import cli, pipelines
from zoo.api import Tokens

OK_MD = {"format": "zoo.tokens", "format_version": "1", "layout": "1d", "meta": '{"family": "toy"}'}
IDS = torch.zeros(1, 16, dtype=torch.long)

BAD_TOKENS = {
    "no ids": ({"other": IDS}, OK_MD, "holds no 'ids'"),
    "meta not json": ({"ids": IDS}, dict(OK_MD, meta="{oops"), "meta is not JSON"),
    "meta a list": ({"ids": IDS}, dict(OK_MD, meta="[1, 2]"), "meta is a list"),
    "bad layout": ({"ids": IDS}, dict(OK_MD, layout="3d-cube"), "layout '3d-cube' is not one of"),
    "float ids": ({"ids": IDS.float()}, OK_MD, "integer tensor"),
    "no batch axis": ({"ids": torch.zeros(16, dtype=torch.long)}, OK_MD, "needs a batch axis"),
    "version not a number": ({"ids": IDS}, dict(OK_MD, format_version="one"), "format_version 'one' is not a number"),
    "future version": ({"ids": IDS}, dict(OK_MD, format_version="99"), "Upgrade zoo"),
    "lengths for another batch": ({"ids": IDS, "lengths": torch.tensor([1, 2])}, OK_MD, "entries for a batch of 1"),
    "not a tokens file": ({"ids": IDS}, {"format": "pt"}, "not a zoo tokens file"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_damaged_tokens_file_is_one_sentence_naming_it(tmp_path, case):
    tensors, md, msg = BAD_TOKENS[case]
    p = tokens_file(tmp_path / "damaged.tokens", tensors, md)
    with pytest.raises(ValueError, match="damaged.tokens") as e:
        Tokens.load(p)
    assert msg in str(e.value)


def test_truncated_tokens_file(tmp_path):
    p = Tokens(IDS, meta={"family": "toy"}).save(tmp_path / "t.tokens")
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"t\.tokens is not a readable zoo tokens file"):
        Tokens.load(p)


def _shard_parts():
    ids = torch.arange(8, dtype=torch.uint8)
    offsets = torch.tensor([0, 4, 8])
    shapes = torch.tensor([[4], [4]])
    md = {"format": "zoo.token-shard", "format_version": "1", "layout": "1d", "keys": '["a", "b"]',
          "metas": '[{"family": "toy"}, {"family": "toy"}]'}
    return {"ids": ids, "offsets": offsets, "shapes": shapes}, md


def _bad_shard(case):
    t, md = _shard_parts()
    if case == "keys not json":
        md["keys"] = "[a, b"
    elif case == "no keys":
        del md["keys"]
    elif case == "keys not strings":
        md["keys"] = "[1, 2]"
    elif case == "metas too short":
        md["metas"] = '[{"family": "toy"}]'
    elif case == "metas not objects":
        md["metas"] = '["x", "y"]'
    elif case == "offsets past the ids":
        t["offsets"] = torch.tensor([0, 4, 9])
    elif case == "offsets falling":
        t["offsets"] = torch.tensor([0, 9, 8])
    elif case == "shape disagrees":
        t["shapes"] = torch.tensor([[2, 3], [4, 1]])
    elif case == "missing tensor":
        del t["shapes"]
    elif case == "float ids":
        t["ids"] = t["ids"].float()
    elif case == "bad layout":
        md["layout"] = "volume"
    elif case == "future version":
        md["format_version"] = "7"
    return t, md


SHARD_CASES = ["keys not json", "no keys", "keys not strings", "metas too short", "metas not objects",
               "offsets past the ids", "offsets falling", "shape disagrees", "missing tensor", "float ids", "bad layout",
               "future version"]


@pytest.mark.parametrize("case", SHARD_CASES)
def test_damaged_shard_is_one_sentence_naming_it(tmp_path, case):
    t, md = _bad_shard(case)
    p = tokens_file(tmp_path / "shard-000000.safetensors", t, md)
    with pytest.raises(ValueError, match="shard-000000.safetensors"):
        pipelines.read_shard(p)


def test_a_good_shard_still_reads(tmp_path):
    t, md = _shard_parts()
    p = tokens_file(tmp_path / "s.safetensors", t, md)
    assert [(k, v.ids.tolist()) for k, v in pipelines.read_shard(p)] == [("a", [[0, 1, 2, 3]]), ("b", [[4, 5, 6, 7]])]


def test_zoo_decode_over_damaged_files_reports_each_without_traceback(toy_registry, tmp_path, capsys):
    model = toy_folder(tmp_path)
    for i, case in enumerate(SHARD_CASES):
        tokens_file(tmp_path / "toks" / f"shard-{i:06d}.safetensors", *_bad_shard(case))
    for case in sorted(BAD_TOKENS):
        tensors, md, _ = BAD_TOKENS[case]
        tokens_file(tmp_path / "toks" / f"{case.replace(' ', '_')}.tokens", tensors, md)
    Tokens(IDS, meta={"family": "toy", "variant": "toy-embedded"}).save(tmp_path / "toks" / "good.tokens")
    rc = cli.main(["decode", str(model), str(tmp_path / "toks"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    n = len(SHARD_CASES) + len(BAD_TOKENS)
    assert f"{n} of {n + 1} item(s) failed" in err and "Traceback" not in err
    assert files_under(tmp_path / "out") == ["good.png"]


def test_the_wav_header_carries_the_models_rate_not_the_tokens_claim(tmp_path):
    import zoo

    tok = zoo.load(AUDIO_MODEL)
    t = tok.encode(torch.zeros(1, 1, 2400), sample_rate=24000)
    t.save(tmp_path / "toks" / "ok.tokens")
    Tokens(t.ids, meta=dict(t.meta, sample_rate=1)).save(tmp_path / "toks" / "lying.tokens")
    rc = cli.main(["decode", AUDIO_MODEL, str(tmp_path / "toks"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1
    assert files_under(tmp_path / "out") == ["ok.wav"]
    assert sf.info(str(tmp_path / "out" / "ok.wav")).samplerate == tok.sample_rate == 24000


def test_metadata_of_any_json_shape_never_crashes_decode(toy_registry, tmp_path, capsys):
    model = toy_folder(tmp_path)
    metas = [{"family": ["toy"]}, {"family": "toy", "variant": 3}, {"family": "toy", "sample_rate": "fast"},
             {"family": "toy", "source": {"x": 1}}]
    for i, meta in enumerate(metas):
        tokens_file(tmp_path / "toks" / f"m{i}.tokens", {"ids": IDS}, dict(OK_MD, meta=json.dumps(meta)))
    rc = cli.main(["decode", str(model), str(tmp_path / "toks"), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and rc in (0, 1)
