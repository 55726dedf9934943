import json

import pytest
import torch

from zoo.api import Tokens


def test_slicing_1d_keeps_lengths_and_meta():
    t = Tokens(torch.arange(24).reshape(3, 8), lengths=torch.tensor([8, 5, 2]), meta={"family": "x", "n": 1})
    s = t[:, :4]
    assert s.ids.shape == (3, 4)
    assert s.lengths.tolist() == [4, 4, 2]
    assert s.meta == {"family": "x", "n": 1}
    one = t[1]
    assert one.ids.shape == (1, 8) and one.lengths.tolist() == [5]
    assert t[-1].ids.tolist() == [list(range(16, 24))]
    assert t[1:3].lengths.tolist() == [5, 2]


def test_slicing_rejects_non_prefix_cut():
    t = Tokens(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(IndexError, match="prefix"):
        t[:, 2:4]


def test_rvq_slicing_selects_layers():
    t = Tokens(torch.zeros(2, 8, 10, dtype=torch.long), layout="rvq", lengths=torch.tensor([10, 7]))
    s = t[:, :3]
    assert s.ids.shape == (2, 3, 10) and s.meta["num_quantizers"] == 3 and s.lengths.tolist() == [10, 7]
    u = t[:, :, :5]
    assert u.lengths.tolist() == [5, 5]
    assert [x.shape for x in t.unpadded()] == [(8, 10), (8, 7)]


def test_ids_become_int64_and_bad_ids_are_refused():
    assert Tokens(torch.zeros(1, 3, dtype=torch.int16)).ids.dtype == torch.int64
    with pytest.raises(TypeError, match="integer"):
        Tokens(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="batch axis"):
        Tokens(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="layout"):
        Tokens(torch.zeros(1, 3, dtype=torch.long), layout="3d")
    with pytest.raises(ValueError, match="lengths"):
        Tokens(torch.zeros(2, 3, dtype=torch.long), lengths=[1, 2, 3])


def test_save_load_round_trip(tmp_path):
    t = Tokens(torch.randint(0, 4096, (2, 3, 5)), layout="rvq", lengths=torch.tensor([5, 4]), meta={"family": "f", "sr": 24000})
    path = t.save(tmp_path / "sub" / "a.tokens")
    u = Tokens.load(path)
    assert torch.equal(u.ids, t.ids) and torch.equal(u.lengths, t.lengths)
    assert u.layout == "rvq" and u.meta == t.meta
    assert [p.name for p in path.parent.iterdir()] == ["a.tokens"]  # no temp file left behind


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Tokens.load(tmp_path / "missing.tokens")
    bad = tmp_path / "bad.tokens"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable"):
        Tokens.load(bad)
    from safetensors.torch import save_file

    save_file({"ids": torch.zeros(1, 2, dtype=torch.long)}, str(tmp_path / "other.tokens"))
    with pytest.raises(ValueError, match="not a zoo tokens file"):
        Tokens.load(tmp_path / "other.tokens")
    save_file({"ids": torch.zeros(1, 2, dtype=torch.long)}, str(tmp_path / "new.tokens"),
              metadata={"format": "zoo.tokens", "format_version": "99", "layout": "1d", "meta": json.dumps({})})
    with pytest.raises(ValueError, match="version 99"):
        Tokens.load(tmp_path / "new.tokens")


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    t = Tokens(torch.zeros(1, 4, dtype=torch.long))
    t.save(tmp_path / "a.tokens")
    before = (tmp_path / "a.tokens").read_bytes()
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        Tokens(torch.ones(1, 4, dtype=torch.long)).save(tmp_path / "a.tokens")
    assert (tmp_path / "a.tokens").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tokens"]


def test_multiscale_first_scales():
    t = Tokens(torch.arange(6)[None], layout="multiscale", meta={"scale_sizes": [1, 2, 3]})
    s = t.first_scales(2)
    assert s.ids.tolist() == [[0, 1, 2]] and s.meta["scale_sizes"] == [1, 2]
    with pytest.raises(ValueError):
        t.first_scales(4)


def test_written_files_get_normal_permissions(tmp_path):
    import os

    path = Tokens(torch.zeros(1, 2, dtype=torch.long)).save(tmp_path / "p.tokens")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
