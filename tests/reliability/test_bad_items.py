"""Issue 22, point 5: one bad item never stops a run. It is reported by its file name, the others are
written, and the exit code is non-zero at the end with a summary."""

import json

import pytest
import torch

import zoo
from reliability_helpers import AUDIO_MODEL, files_under, png, png_header_only, toy_folder, wav
from zoo import cli, pipelines
from zoo.api import Tokens


def test_short_clip_with_metrics_is_reported_and_the_run_goes_on(tmp_path, capsys):
    data = tmp_path / "data"
    wav(data / "short.wav", n=300)
    wav(data / "ok.wav", seconds=0.2)
    rc = cli.main(["reconstruct", AUDIO_MODEL, str(data), "--out", str(tmp_path / "out"), "--metrics", "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "short.wav" in err and "more than 512 samples" in err and "1 of 2 item(s) failed" in err
    assert files_under(tmp_path / "out") == ["metrics.json", "ok.wav", "short.wav"]
    rows = {r["input"]: r for r in json.loads((tmp_path / "out" / "metrics.json").read_text())}
    assert "mel_distance" in rows["ok.wav"] and "metrics_error" in rows["short.wav"]


def test_eval_reports_a_short_clip_and_measures_the_others(tmp_path, capsys):
    data = tmp_path / "data"
    wav(data / "short.wav", n=300)
    wav(data / "ok.wav", seconds=0.25)
    rc = cli.main(["eval", AUDIO_MODEL, str(data), "--report", str(tmp_path / "rep"), "-q", "--samples", "0"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "short.wav" in err
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert [r["item"] for r in m["tokenizers"][AUDIO_MODEL]["per_item"]] == ["ok.wav"]
    assert any("short.wav" in f for f in m["failures"])


@pytest.mark.parametrize("command", [["reconstruct"], ["encode", "--per-file"], ["encode"]])
def test_decompression_bomb_non_tar_tar_and_garbage_are_reported_by_name(toy_registry, tmp_path, capsys, command):
    model = toy_folder(tmp_path)
    data = tmp_path / "data"
    png(data / "good.png")
    png_header_only(data / "bomb.png", 200000, 200000)
    (data / "fake.tar").write_bytes(b"this is not a tar archive" * 40)
    (data / "garbage.png").write_bytes(b"\x89PNG garbage")
    rc = cli.main([command[0], str(model), str(data), "--out", str(tmp_path / "out"), "-q", *command[1:]])
    assert rc == 1
    err = capsys.readouterr().err
    for name in ("bomb.png", "fake.tar", "garbage.png"):
        assert name in err
    assert "declares too many pixels" in err and "not a readable .tar" in err and "BytesIO" not in err
    assert "3 of 4 item(s) failed" in err


def test_unreadable_audio_is_named_not_bytesio(tmp_path, capsys):
    data = tmp_path / "data"
    wav(data / "ok.wav", seconds=0.1)
    (data / "noise.wav").write_bytes(b"RIFF not really a wav file at all" * 10)
    rc = cli.main(["encode", AUDIO_MODEL, str(data), "--out", str(tmp_path / "out"), "-q", "--per-file"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "noise.wav" in err and "BytesIO" not in err and "accepted: WAV" in err
    assert files_under(tmp_path / "out") == ["ok.tokens"]


def test_one_bad_item_does_not_take_its_batch_mates_down(tmp_path, capsys):
    data = tmp_path / "data"
    for i in range(3):  # same length and rate: one batch
        wav(data / f"c{i}.wav", seconds=0.1, peak=2.0 if i == 1 else 0.5, seed=i)
    rc = cli.main(["encode", AUDIO_MODEL, str(data), "--out", str(tmp_path / "out"), "-q", "--per-file",
                   "--batch-size", "3"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "c1.wav" in err and "[-1, 1]" in err
    assert files_under(tmp_path / "out") == ["c0.tokens", "c2.tokens"]
    # the shard pipeline does the same
    s = pipelines.encode_dataset(zoo.load(AUDIO_MODEL), [data], tmp_path / "shards", batch_size=3,
                                 progress=False)
    assert s.items_encoded == 2 and len(s.failures) == 1 and s.failures[0].startswith("c1.wav")


def test_one_corrupt_tokens_file_does_not_stop_decode(toy_registry, tmp_path, capsys):
    model = toy_folder(tmp_path)
    t = Tokens(torch.zeros(1, 16, dtype=torch.long), meta={"family": "toy", "variant": "toy-embedded"})
    t.save(tmp_path / "toks" / "a.tokens")
    t.save(tmp_path / "toks" / "c.tokens")
    (tmp_path / "toks" / "b.tokens").write_bytes(b"\x00\x01 not safetensors")
    (tmp_path / "toks" / "d.safetensors").write_bytes(b"{}")
    rc = cli.main(["decode", str(model), str(tmp_path / "toks"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "b.tokens" in err and "d.safetensors" in err and "2 of 4 item(s) failed" in err
    assert files_under(tmp_path / "out") == ["a.png", "c.png"]
    with pytest.raises(SystemExit, match="b.tokens"):
        cli.main(["decode", str(model), str(tmp_path / "toks"), "--out", str(tmp_path / "out2"), "-q", "--strict"])


def test_an_item_that_breaks_the_model_is_reported_not_a_traceback(toy_registry, tmp_path, capsys, monkeypatch):
    from toy_family import ToyTokenizer

    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png", seed=1)
    png(tmp_path / "data" / "b.png", seed=2)
    real = ToyTokenizer.encode

    def flaky(self, x):  # fails on b.png, and on any batch (so the batch is retried item by item)
        if x.shape[0] == 1 and abs(float(x.sum()) - flaky.bad_sum) < 1e-3:
            raise RuntimeError("CUDA-like failure inside the model")
        if x.shape[0] > 1:
            raise RuntimeError("batch failed")
        return real(self, x)

    from zoo import media

    flaky.bad_sum = float(media.load_image(tmp_path / "data" / "b.png").sum())
    monkeypatch.setattr(ToyTokenizer, "encode", flaky)
    rc = cli.main(["encode", str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q", "--per-file"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "b.png: RuntimeError: CUDA-like failure" in err
    assert files_under(tmp_path / "out") == ["a.tokens"]
