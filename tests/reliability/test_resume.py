"""Issue 22, point 3: resuming into an output folder checks the manifest (model, options, item list),
redoes shards that miss items (failed ones are retried), and one run per rank holds the folder."""

import json

import pytest
import torch

from reliability_helpers import files_under, png, toy_folder
from zoo import cli, media, pipelines


@pytest.fixture
def toy(toy_registry):
    from toy_family import ToyConfig, ToyTokenizer

    torch.manual_seed(0)
    return ToyTokenizer(ToyConfig()).eval()


def _data(root, n=4):
    for i in range(n):
        png(root / f"img{i}.png", seed=i)
    return root


def _encode(tok, data, out, **kw):
    return pipelines.encode_dataset(tok, [data], out, progress=False, **dict({"shard_size": 2}, **kw))


def test_same_run_resumes_and_skips_finished_shards(toy, tmp_path):
    data = _data(tmp_path / "data")
    s = _encode(toy, data, tmp_path / "out")
    assert (s.shards_written, s.shards_skipped) == (2, 0)
    s = _encode(toy, data, tmp_path / "out")
    assert (s.shards_written, s.shards_skipped) == (0, 2)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["options"]["shard_size"] == 2 and m["items"]["count"] == 4 and m["model"]["family"] == "toy"


@pytest.mark.parametrize("change", ["shard_size", "new file", "renamed file", "removed file", "other weights",
                                    "other option", "world size", "mono"])
def test_another_run_into_the_same_folder_is_refused(toy, tmp_path, change):
    data = _data(tmp_path / "data")
    _encode(toy, data, tmp_path / "out")
    before = {p: (tmp_path / "out" / p).read_bytes() for p in files_under(tmp_path / "out")}
    kw = {}
    if change == "shard_size":
        kw["shard_size"] = 3
    elif change == "new file":
        png(data / "img9.png", seed=9)
    elif change == "renamed file":
        (data / "img1.png").rename(data / "img1b.png")
    elif change == "removed file":
        (data / "img3.png").unlink()
    elif change == "other weights":
        with torch.no_grad():
            toy.quantizer.codebook.add_(1)
    elif change == "other option":
        kw["encode_kwargs"] = {"unused": 1}
    elif change == "world size":
        kw.update(world_size=2, rank=0)
    elif change == "mono":
        kw["mono"] = True
    with pytest.raises(ValueError, match="holds shards of another run"):
        _encode(toy, data, tmp_path / "out", **kw)
    assert {p: (tmp_path / "out" / p).read_bytes() for p in files_under(tmp_path / "out")} == before


def test_shards_without_a_manifest_are_refused(toy, tmp_path):
    data = _data(tmp_path / "data")
    _encode(toy, data, tmp_path / "out")
    (tmp_path / "out" / "manifest.json").unlink()
    with pytest.raises(ValueError, match="no manifest.json"):
        _encode(toy, data, tmp_path / "out")


def test_a_damaged_manifest_is_refused(toy, tmp_path):
    data = _data(tmp_path / "data")
    _encode(toy, data, tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json is not readable"):
        _encode(toy, data, tmp_path / "out")


def test_failed_items_are_retried_on_resume(toy, tmp_path):
    data = _data(tmp_path / "data")
    good = (data / "img1.png").read_bytes()
    (data / "img1.png").write_bytes(good[:20])  # unreadable for now
    s = _encode(toy, data, tmp_path / "out")
    assert s.items_encoded == 3 and "img1.png" in s.failures[0]
    assert (tmp_path / "out" / "failures-rank0.jsonl").is_file()
    (data / "img1.png").write_bytes(good)  # repaired: its shard is redone, the other is kept
    s = _encode(toy, data, tmp_path / "out")
    assert (s.shards_written, s.shards_skipped, s.items_encoded, s.failures) == (1, 1, 2, [])
    assert not (tmp_path / "out" / "failures-rank0.jsonl").exists()


def test_a_replaced_file_redoes_its_shard(toy, tmp_path):
    data = _data(tmp_path / "data")
    _encode(toy, data, tmp_path / "out")
    png(data / "img3.png", h=40, w=30, seed=5)  # same name, other content and size
    s = _encode(toy, data, tmp_path / "out")
    assert (s.shards_written, s.shards_skipped) == (1, 1)
    direct = toy.encode(media.resize_center_crop(media.load_image(data / "img3.png"), 16)[None])
    assert torch.equal(dict(pipelines.read_shard(tmp_path / "out" / "shard-000001.safetensors"))["img3.png"].ids, direct.ids)


def test_batch_size_may_differ_on_resume(toy, tmp_path):
    data = _data(tmp_path / "data")
    _encode(toy, data, tmp_path / "out", batch_size=4)
    assert _encode(toy, data, tmp_path / "out", batch_size=1).shards_skipped == 2


def test_failed_items_are_retried_when_the_file_is_the_same(toy, tmp_path, monkeypatch):
    """A transient failure (the model raised) is retried: the shard that misses the item is redone."""
    data = _data(tmp_path / "data")
    real = type(toy).encode
    calls = {"n": 0}

    def flaky(self, x, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient")
        return real(self, x, **kw)

    monkeypatch.setattr(type(toy), "encode", flaky)
    s = _encode(toy, data, tmp_path / "out", batch_size=1)
    assert s.items_encoded == 3 and len(s.failures) == 1
    s = _encode(toy, data, tmp_path / "out", batch_size=1)
    assert (s.shards_written, s.shards_skipped, s.items_encoded, s.failures) == (1, 1, 2, [])
    got = sorted(k for p in sorted((tmp_path / "out").glob("shard-*")) for k, _ in pipelines.read_shard(p))
    assert got == [f"img{i}.png" for i in range(4)]
    assert not (tmp_path / "out" / "failures-rank0.jsonl").exists()


def test_a_damaged_shard_is_redone(toy, tmp_path):
    data = _data(tmp_path / "data")
    _encode(toy, data, tmp_path / "out")
    (tmp_path / "out" / "shard-000001.safetensors").write_bytes(b"garbage")
    s = _encode(toy, data, tmp_path / "out")
    assert (s.shards_written, s.shards_skipped) == (1, 1)
    assert len(pipelines.read_shard(tmp_path / "out" / "shard-000001.safetensors")) == 2


def test_a_second_run_into_a_held_folder_is_refused(toy, tmp_path):
    data = _data(tmp_path / "data")
    (tmp_path / "out").mkdir()
    with pipelines.OutputLock(tmp_path / "out", 0):
        with pytest.raises(ValueError, match="Another zoo run is writing to"):
            _encode(toy, data, tmp_path / "out")
        _encode(toy, data, tmp_path / "out", rank=1, world_size=2)  # another rank of the same run may
    s = _encode(toy, data, tmp_path / "out", rank=0, world_size=2)  # released: the lock is free again
    assert s.items_encoded == 2


def test_cli_reports_a_refused_resume_as_a_sentence(toy_registry, tmp_path):
    model_a, model_b = toy_folder(tmp_path, seed=0), toy_folder(tmp_path, seed=1)
    data = _data(tmp_path / "data")
    assert cli.main(["encode", str(model_a), str(data), "--out", str(tmp_path / "out"), "-q"]) == 0
    with pytest.raises(SystemExit, match="model.weights_sha256"):
        cli.main(["encode", str(model_b), str(data), "--out", str(tmp_path / "out"), "-q"])
