"""Issue 22, point 8: --out that is a file, read-only or on a full disk, and bad options, give one
sentence (SystemExit), never a traceback."""

import errno
import os

import pytest

from reliability_helpers import AUDIO_MODEL, png, toy_folder, wav
from zoo import cli

COMMANDS = [["reconstruct"], ["encode"], ["encode", "--per-file"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_that_is_a_file(toy_registry, tmp_path, command):
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png")
    (tmp_path / "out").write_text("I am a file")
    with pytest.raises(SystemExit, match="is a file; give a folder"):
        cli.main([command[0], str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q", *command[1:]])
    with pytest.raises(SystemExit, match="cannot be created"):
        cli.main([command[0], str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out" / "sub"), "-q",
                  *command[1:]])


def test_decode_and_eval_out_that_is_a_file(toy_registry, tmp_path):
    from zoo.api import Tokens
    import torch

    model = toy_folder(tmp_path)
    Tokens(torch.zeros(1, 16, dtype=torch.long), meta={"family": "toy"}).save(tmp_path / "t" / "a.tokens")
    png(tmp_path / "data" / "a.png")
    (tmp_path / "f").write_text("file")
    with pytest.raises(SystemExit, match="is a file"):
        cli.main(["decode", str(model), str(tmp_path / "t"), "--out", str(tmp_path / "f"), "-q"])
    with pytest.raises(SystemExit, match="is a file"):
        cli.main(["eval", str(model), str(tmp_path / "data"), "--report", str(tmp_path / "f"), "-q"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_out(toy_registry, tmp_path, command):
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png")
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    try:
        with pytest.raises(SystemExit, match="not writable|cannot be created"):
            cli.main([command[0], str(model), str(tmp_path / "data"), "--out", str(tmp_path / "ro" / "x"), "-q",
                      *command[1:]])
    finally:
        os.chmod(tmp_path / "ro", 0o755)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("command", COMMANDS)
def test_full_disk_or_readonly_while_writing_stops_with_a_sentence(toy_registry, tmp_path, monkeypatch, command, code):
    """The folder was writable when checked, then the disk filled (or the folder went read-only)."""
    import zoo.api

    model = toy_folder(tmp_path)
    for i in range(3):
        png(tmp_path / "data" / f"a{i}.png", seed=i)

    def full(path, write_fn):
        raise OSError(code, os.strerror(code), str(path))

    for mod in ("zoo.api", "zoo.pipelines", "zoo.media.image", "zoo.media.audio"):
        monkeypatch.setattr(f"{mod}.atomic_write", full)
    with pytest.raises(SystemExit, match=os.strerror(code)):
        cli.main([command[0], str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q", *command[1:]])
    assert zoo.api  # the real atomic_write is restored by monkeypatch


BAD_OPTIONS = [
    (["-o", "num_tokens"], "takes KEY=VALUE"),
    (["-o", "=3"], "must be a Python identifier"),
    (["-o", "1x=3"], "must be a Python identifier"),
    (["-o", "a b=3"], "must be a Python identifier"),
    (["-o", "x=1", "-o", "x=2"], "given twice"),
    (["-o", "nonexistent=1"], "takes no nonexistent"),
    (["--num-workers", "-1"], "--num-workers must be at least 0"),
    (["--shard-size", "0"], "--shard-size must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--num-tokens", "0"], "--num-tokens must be at least 1"),
]


@pytest.mark.parametrize("extra,msg", BAD_OPTIONS)
def test_bad_options_are_sentences(toy_registry, tmp_path, extra, msg):
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png")
    with pytest.raises(SystemExit, match=msg):
        cli.main(["encode", str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q", *extra])


def test_sample_rate_option_is_refused_for_audio(tmp_path):
    wav(tmp_path / "data" / "a.wav")
    with pytest.raises(SystemExit, match="read from each file's header"):
        cli.main(["encode", AUDIO_MODEL, str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q",
                  "-o", "sample_rate=16000"])


def test_option_of_the_wrong_type_is_reported_per_item_not_a_traceback(tmp_path, capsys):
    wav(tmp_path / "data" / "a.wav")
    rc = cli.main(["encode", AUDIO_MODEL, str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q",
                   "-o", "mono=[1, 2]", "--per-file"])
    assert rc in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


def test_out_without_write_permission_is_a_sentence(toy_registry, tmp_path, monkeypatch):
    """As root every folder is writable, so the permission answer is faked here (the check is os.access)."""
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png")
    monkeypatch.setattr("zoo.pipelines.os.access", lambda path, mode: False)
    with pytest.raises(SystemExit, match="is not writable; give a folder you can write to"):
        cli.main(["reconstruct", str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q"])
