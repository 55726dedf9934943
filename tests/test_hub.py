"""Weights resolution and our folder format, tested on real files: a folder laid out as the hub cache
is, the shelf of embedded defaults, and strict loading against real state dicts."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo import hub


def _toy(seed=0):
    from toy_family import ToyConfig, ToyTokenizer

    torch.manual_seed(seed)
    return ToyTokenizer(ToyConfig()).eval()


def _official_state(model):
    sd = {}
    for k, v in model.state_dict().items():
        k = k.replace("encoder.", "enc.", 1).replace("quantizer.codebook", "vq.embed", 1).replace("decoder.", "dec.", 1)
        sd[k] = v.clone()
    sd["step"] = torch.tensor(7)
    return sd


def _fake_hub_cache(root, repo_id, files: dict, revision="a" * 40):
    """Lay files out as huggingface_hub's cache does: models--org--name/{refs/main, snapshots/<rev>/...}."""
    base = root / ("models--" + repo_id.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(revision)
    snap = base / "snapshots" / revision
    snap.mkdir(parents=True)
    for name, writer in files.items():
        writer(snap / name)
    return snap


def test_save_and_load_folder_bit_identical(toy_registry, tmp_path):
    m = _toy()
    m.variant = "toy-16"
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["family"] == "toy" and cfg["variant"] == "toy-16" and cfg["format_version"] == 1
    assert "_target_" not in json.dumps(cfg) and "class" not in json.dumps(cfg["config"])
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith("---") and "library_name: zoo" in card and "toy-16" in card
    back = zoo.load(str(tmp_path / "m"))
    assert back.variant == "toy-16" and not back.training
    for (k, a), (k2, b) in zip(m.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x, _ = m.example_input(2, torch.Generator().manual_seed(0))
    assert torch.equal(m.encode(x).ids, back.encode(x).ids)


def test_strict_loading_names_every_problem(toy_registry, tmp_path):
    m = _toy()
    m.save_pretrained(tmp_path / "m")
    sd = {k: v for k, v in m.state_dict().items() if k != "decoder.bias"}
    sd["extra.weight"] = torch.zeros(1)
    sd["encoder.weight"] = torch.zeros(1, 2, 3)
    save_file(sd, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ValueError) as e:
        zoo.load(str(tmp_path / "m"))
    msg = str(e.value)
    assert "missing keys (1)" in msg and "decoder.bias" in msg
    assert "unexpected keys (1)" in msg and "extra.weight" in msg
    assert "shape mismatches (1)" in msg and "encoder.weight" in msg


def test_truncated_weights_give_a_clear_error(toy_registry, tmp_path):
    m = _toy()
    m.save_pretrained(tmp_path / "m")
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        zoo.load(str(tmp_path / "m"))


def test_convert_from_official_files(toy_registry, tmp_path):
    m = _toy(1)
    sd = _official_state(m)
    save_file(sd, str(tmp_path / "toy.safetensors"))
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "toy.ckpt")
    (tmp_path / "cfg.json").write_text(json.dumps({"dim": 8, "codebook_size": 32}))
    for path in ("toy.safetensors", "toy.ckpt"):
        got = zoo.convert("toy", checkpoint=tmp_path / path, config=tmp_path / "cfg.json")
        for k, v in m.state_dict().items():
            assert torch.equal(got.state_dict()[k], v), k
    # an unknown official key is an error, not silently dropped
    sd2 = dict(sd, **{"enc.surprise": torch.zeros(1)})
    save_file(sd2, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="encoder.surprise"):
        zoo.convert("toy", checkpoint=tmp_path / "bad.safetensors")
    with pytest.raises(KeyError, match="Unknown tokenizer family"):
        zoo.convert("toyy", checkpoint=tmp_path / "toy.safetensors")


class _Evil:
    def __reduce__(self):
        return (exec, ("import os; os.environ['ZOO_PWNED'] = '1'",))


def test_pickles_are_loaded_safely(toy_registry, tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_PWNED", raising=False)
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": _Evil()}}, f)
    with pytest.raises(ValueError, match="weights_only"):
        hub.read_checkpoint(path)
    import os

    assert "ZOO_PWNED" not in os.environ
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        hub.read_checkpoint(tmp_path / "empty.ckpt")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="accepted"):
        hub.read_checkpoint(tmp_path / "w.onnx")


def test_official_weights_from_the_hub_cache_are_converted_once(toy_registry, tmp_path):
    m = _toy(2)
    sd = _official_state(m)
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "toy-org/toy-16", {"toy.safetensors": lambda p: save_file(sd, str(p))})
    got = zoo.load("toy-16", cache_dir=str(cache))
    assert got.variant == "toy-16"
    assert torch.equal(got.state_dict()["quantizer.codebook"], m.state_dict()["quantizer.codebook"])
    converted = cache / "zoo-converted" / "toy-16" / "main"
    assert (converted / "model.safetensors").is_file() and (converted / "config.json").is_file()
    # second load reads the converted copy: remove the official file to prove it
    for f in (cache / "models--toy-org--toy-16" / "snapshots").rglob("toy.safetensors"):
        f.unlink()
    again = zoo.load("toy-16", cache_dir=str(cache))
    assert torch.equal(again.state_dict()["encoder.weight"], m.state_dict()["encoder.weight"])


def test_offline_without_cache_says_what_to_do(toy_registry, tmp_path):
    with pytest.raises(FileNotFoundError, match="toy-org/toy-16"):
        zoo.load("toy-16", cache_dir=str(tmp_path / "empty"))


def test_hub_repo_in_zoo_format_loads_from_cache(toy_registry, tmp_path):
    m = _toy(3)
    m.save_pretrained(tmp_path / "src")
    import shutil

    files = {n: (lambda p, n=n: shutil.copy(tmp_path / "src" / n, p)) for n in ("config.json", "model.safetensors", "README.md")}
    _fake_hub_cache(tmp_path / "hub", "me/my-tok", files)
    got = zoo.load("me/my-tok", cache_dir=str(tmp_path / "hub"))
    assert torch.equal(got.state_dict()["decoder.weight"], m.state_dict()["decoder.weight"])


def test_embedded_shelf_and_unknown_names(toy_registry, tmp_path, monkeypatch):
    m = _toy(4)
    m.save_pretrained(tmp_path / "models" / "toy" / "embedded")
    monkeypatch.setattr(hub, "shelf_dir", lambda: tmp_path / "models")
    got = zoo.load("toy-embedded")
    assert got.variant == "toy-embedded"
    with pytest.raises(KeyError) as e:
        zoo.load("toy-embeded")
    assert "toy-embedded" in str(e.value)
    with pytest.raises(FileNotFoundError, match="not a catalogue name"):
        zoo.load("nobody/nothing")


def test_push_to_hub_uploads_exactly_our_folder(toy_registry, tmp_path):
    calls = []

    class RecordingApi:  # stands in for huggingface_hub.HfApi, which cannot reach the hub here
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, folder_path, repo_id, **kw):
            from pathlib import Path

            files = sorted(p.name for p in Path(folder_path).iterdir())
            calls.append(("upload_folder", repo_id, files, kw["allow_patterns"]))
            cfg = json.loads((Path(folder_path) / "config.json").read_text())
            calls.append(("config", cfg["family"]))
            return "commit-url"

    m = _toy()
    assert m.push_to_hub("me/toy", api=RecordingApi(), private=True) == "commit-url"
    assert calls[0] == ("create_repo", "me/toy", {"private": True, "exist_ok": True})
    assert calls[1] == ("upload_folder", "me/toy", ["README.md", "config.json", "model.safetensors"],
                        ["config.json", "model.safetensors", "README.md"])
    assert calls[2] == ("config", "toy")
    with pytest.raises(FileNotFoundError):
        hub.push_folder(tmp_path / "nothing", "me/toy", api=RecordingApi())
