import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from zoo import media, pipelines
from zoo.api import Tokens

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy(toy_registry):
    from toy_family import ToyConfig, ToyTokenizer

    torch.manual_seed(0)
    return ToyTokenizer(ToyConfig()).eval()


def _images(folder: Path, n: int, seed=0):
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        media.save_image(folder / f"img{i:03d}.png", torch.rand(3, 16, 16, generator=g))
    return folder


def _all_items(out: Path):
    got = {}
    for shard in sorted(out.glob("shard-*.safetensors")):
        for key, t in pipelines.read_shard(shard):
            assert key not in got, f"{key} encoded twice"
            got[key] = t
    return got


def test_shard_plan_partitions_items_exactly():
    for n, size, world in [(10, 3, 2), (7, 1, 3), (100, 7, 4), (1, 5, 2)]:
        seen = []
        for r in range(world):
            for _, rng in pipelines.shard_plan(n, size, r, world):
                seen += list(rng)
        assert sorted(seen) == list(range(n))


def test_smallest_dtype_and_round_trip(toy, tmp_path):
    assert pipelines.smallest_int_dtype(256) == torch.uint8
    assert pipelines.smallest_int_dtype(4096) == torch.int16
    assert pipelines.smallest_int_dtype(64000) == torch.uint16
    assert pipelines.smallest_int_dtype(2**20) == torch.int32
    toks = [Tokens(torch.tensor([[1, 2, 3]]), meta={"a": 1}), Tokens(torch.tensor([[4, 65535, 6, 7]]), lengths=[2])]
    pipelines.write_shard(tmp_path / "s.safetensors", ["x", "y"], toks, codebook_size=65536)
    back = pipelines.read_shard(tmp_path / "s.safetensors")
    assert [k for k, _ in back] == ["x", "y"]
    assert back[0][1].ids.tolist() == [[1, 2, 3]] and back[0][1].meta == {"a": 1}
    assert back[1][1].ids.tolist() == [[4, 65535]]  # stored unpadded


def test_decode_from_shards_equals_direct_path(toy, tmp_path):
    data = _images(tmp_path / "data", 5)
    s = pipelines.encode_dataset(toy, [data], tmp_path / "out", shard_size=2, batch_size=3, progress=False)
    assert (s.shards_written, s.items_encoded, s.failures) == (3, 5, [])
    items = _all_items(tmp_path / "out")
    assert sorted(items) == [f"img{i:03d}.png" for i in range(5)]
    for key, t in items.items():
        x = media.load_image(data / key)[None]
        direct = toy.encode(x)
        assert torch.equal(t.ids, direct.ids)
        assert torch.equal(toy.decode(t), toy.decode(direct))


def test_two_ranks_split_without_overlap(toy, tmp_path):
    data = _images(tmp_path / "data", 7)
    for r in range(2):
        pipelines.encode_dataset(toy, [data], tmp_path / "out", shard_size=2, rank=r, world_size=2, progress=False)
    assert sorted(_all_items(tmp_path / "out")) == [f"img{i:03d}.png" for i in range(7)]


def test_killed_run_resumes_to_identical_output(toy, tmp_path, monkeypatch):
    data = _images(tmp_path / "data", 6)
    pipelines.encode_dataset(toy, [data], tmp_path / "ref", shard_size=2, batch_size=1, progress=False)

    calls = {"n": 0}
    real = type(toy).encode

    def dying(self, x, **kw):
        calls["n"] += 1
        if calls["n"] == 4:  # dies inside the second shard
            raise KeyboardInterrupt
        return real(self, x, **kw)

    monkeypatch.setattr(type(toy), "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        pipelines.encode_dataset(toy, [data], tmp_path / "out", shard_size=2, batch_size=1, progress=False)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())  # nothing half-written: no temp file, no partial shard
    assert names == [".zoo-lock-rank0", "manifest.json", "shard-000000.safetensors"]
    monkeypatch.setattr(type(toy), "encode", real)
    s = pipelines.encode_dataset(toy, [data], tmp_path / "out", shard_size=2, batch_size=1, progress=False)
    assert (s.shards_skipped, s.shards_written) == (1, 2)
    from safetensors import safe_open

    for name in ("shard-000000.safetensors", "shard-000001.safetensors", "shard-000002.safetensors"):
        # safetensors orders header keys by hash, so compare content rather than bytes
        with safe_open(str(tmp_path / "out" / name), "pt") as a, safe_open(str(tmp_path / "ref" / name), "pt") as b:
            assert a.metadata() == b.metadata()
            assert sorted(a.keys()) == sorted(b.keys())
            for k in a.keys():
                assert torch.equal(a.get_tensor(k), b.get_tensor(k))


def test_unreadable_items_are_reported_or_stop_the_run(toy, tmp_path):
    data = _images(tmp_path / "data", 3)
    (data / "zzz.png").write_bytes(b"nope")
    s = pipelines.encode_dataset(toy, [data], tmp_path / "out", progress=False)
    assert s.items_encoded == 3 and len(s.failures) == 1 and "zzz.png" in s.failures[0]
    assert "zzz.png" in (tmp_path / "out" / "failures-rank0.jsonl").read_text()
    with pytest.raises(ValueError, match="zzz.png"):
        pipelines.encode_dataset(toy, [data], tmp_path / "strict", strict=True, progress=False)


def test_webdataset_tar_shards(toy, tmp_path):
    data = _images(tmp_path / "data", 3)
    with tarfile.open(tmp_path / "part-0.tar", "w") as tar:
        for p in sorted(data.iterdir()):
            tar.add(p, arcname=f"{p.stem}.png")
        info = tarfile.TarInfo("img000.json")
        payload = b'{"caption": "x"}'
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    pipelines.encode_dataset(toy, [tmp_path / "part-0.tar"], tmp_path / "out", progress=False)
    items = _all_items(tmp_path / "out")
    assert sorted(items) == ["part-0.tar/img000.png", "part-0.tar/img001.png", "part-0.tar/img002.png"]
    direct = toy.encode(media.load_image(data / "img001.png")[None])
    assert torch.equal(items["part-0.tar/img001.png"].ids, direct.ids)


def test_torchrun_two_ranks_encode_each_item_once(toy, tmp_path):
    data = _images(tmp_path / "data", 9)
    toy.save_pretrained(tmp_path / "model")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "0",
           str(TESTS / "toy_cli.py"), "encode", str(tmp_path / "model"), str(data), "--out", str(tmp_path / "out"),
           "--shard-size", "2", "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rank 0/2" in out.stdout and "rank 1/2" in out.stdout
    assert sorted(_all_items(tmp_path / "out")) == [f"img{i:03d}.png" for i in range(9)]
