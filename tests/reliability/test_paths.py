"""Issue 22, points 1 and 2: every output lands inside --out; no input is overwritten or read back; two
inputs never write one output."""

import io
import tarfile

import pytest
import torch

from reliability_helpers import AUDIO_MODEL, files_under, png, toy_folder, wav
from zoo import cli, pipelines
from zoo.api import Tokens


# -- output_path: the one gate every write goes through -------------------------------------------
@pytest.mark.parametrize("key", ["../x.png", "a/../../x.png", "/etc/x.png", "", ".", "./", "a/./../../b.wav",
                                 "..", "C:/x.png", "a\\..\\..\\x.png", "x\x00.png"])
def test_output_path_refuses_keys_that_escape(tmp_path, key):
    with pytest.raises(ValueError, match="key"):
        pipelines.output_path(tmp_path / "out", key)


@pytest.mark.parametrize("key", ["a.png", "sub/a.png", "a..b.png", "part-0.tar/x/y.wav", "no_suffix"])
def test_output_path_keeps_safe_keys_inside(tmp_path, key):
    base = pipelines.output_path(tmp_path / "out", key)
    assert base.resolve().is_relative_to((tmp_path / "out").resolve())


def test_output_path_refuses_a_symlink_out_of_the_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside the output folder"):
        pipelines.output_path(tmp_path / "out", "link/x.png")


# -- tar members and shard keys ---------------------------------------------------------------
def _tar_with(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("evil", ["../../evil.png", "/tmp/zoo-evil-abs.png", "a/../../../evil.png"])
def test_tar_member_climbing_out_is_refused_and_the_rest_is_written(toy_registry, tmp_path, capsys, evil):
    model = toy_folder(tmp_path)
    good = png(tmp_path / "src" / "good.png").read_bytes()
    tar = _tar_with(tmp_path / "data" / "part.tar", [("good.png", good), (evil, good)])
    out = tmp_path / "work" / "deep" / "out"
    before = files_under(tmp_path)
    rc = cli.main(["reconstruct", str(model), str(tar), "--out", str(out), "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert evil in err and "refused" in err
    assert files_under(out) == ["part.tar/good.png"]
    assert sorted(set(files_under(tmp_path)) - set(before)) == ["work/deep/out/part.tar/good.png"]


@pytest.mark.parametrize("key", ["../../evil", "/tmp/zoo-evil-abs", "sub/../../evil"])
def test_shard_key_climbing_out_is_refused_on_decode(toy_registry, tmp_path, capsys, key):
    model = toy_folder(tmp_path)
    t = Tokens(torch.zeros(1, 16, dtype=torch.long), meta={"family": "toy", "variant": "toy-embedded"})
    pipelines.write_shard(tmp_path / "shards" / "shard-000000.safetensors", [key, "fine.png"], [t, t], 32)
    out = tmp_path / "a" / "b" / "out"
    before = files_under(tmp_path)
    rc = cli.main(["decode", str(model), str(tmp_path / "shards"), "--out", str(out), "-q"])
    assert rc == 1
    assert key in capsys.readouterr().err
    assert sorted(set(files_under(tmp_path)) - set(before)) == ["a/b/out/fine.png"]


# -- inputs are never destroyed ---------------------------------------------------------------
@pytest.mark.parametrize("where", ["same", "inside"])
@pytest.mark.parametrize("command", ["reconstruct", "encode"])
def test_out_equal_to_or_inside_the_input_folder_is_refused(toy_registry, tmp_path, where, command):
    model = toy_folder(tmp_path)
    data = tmp_path / "data"
    png(data / "a.png")
    original = (data / "a.png").read_bytes()
    out = data if where == "same" else data / "out"
    with pytest.raises(SystemExit, match="inside it|is the input folder"):
        cli.main([command, str(model), str(data), "--out", str(out), "-q"])
    assert (data / "a.png").read_bytes() == original and files_under(data) == ["a.png"]


def test_an_input_file_inside_out_is_refused(toy_registry, tmp_path):
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png")
    original = (tmp_path / "data" / "a.png").read_bytes()
    with pytest.raises(SystemExit, match="lies inside --out"):
        cli.main(["reconstruct", str(model), str(tmp_path / "data" / "a.png"), "--out", str(tmp_path / "data"), "-q"])
    assert (tmp_path / "data" / "a.png").read_bytes() == original


def test_eval_report_inside_the_data_folder_is_refused(toy_registry, tmp_path):
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "a.png")
    with pytest.raises(SystemExit, match="inside it"):
        cli.main(["eval", str(model), str(tmp_path / "data"), "--report", str(tmp_path / "data" / "rep"), "-q"])


def test_two_audio_inputs_with_one_stem_are_refused_before_any_write(tmp_path):
    data = tmp_path / "data"
    wav(data / "a.wav")
    wav(data / "a.flac", subtype=None)
    with pytest.raises(SystemExit, match=r"a\.flac and a\.wav would both write a\.\*"):
        cli.main(["reconstruct", AUDIO_MODEL, str(data), "--out", str(tmp_path / "out"), "-q"])
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []


@pytest.mark.parametrize("command", [["reconstruct"], ["encode", "--per-file"]])
def test_two_image_inputs_with_one_stem_are_refused(toy_registry, tmp_path, command):
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "sub" / "x.png")
    from zoo import media

    media.save_image(tmp_path / "data" / "sub" / "x.jpg", torch.rand(3, 16, 16))
    with pytest.raises(SystemExit, match="would both write sub/x"):
        cli.main([command[0], str(model), str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q", *command[1:]])


def test_decode_never_overwrites_an_output_it_wrote(toy_registry, tmp_path, capsys):
    model = toy_folder(tmp_path)
    t = Tokens(torch.zeros(1, 16, dtype=torch.long), meta={"family": "toy", "variant": "toy-embedded"})
    t.save(tmp_path / "one" / "x.tokens")
    t2 = Tokens(torch.ones(1, 16, dtype=torch.long), meta={"family": "toy", "variant": "toy-embedded"})
    t2.save(tmp_path / "two" / "x.tokens")
    rc = cli.main(["decode", str(model), str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1
    assert "already written" in capsys.readouterr().err
    assert files_under(tmp_path / "out") == ["x.png"]


def test_dotted_names_keep_distinct_outputs(toy_registry, tmp_path):
    """`take.v1.png` and `take.v2.png` write `take.v1.*` and `take.v2.*`, not both `take.*`."""
    model = toy_folder(tmp_path)
    png(tmp_path / "data" / "take.v1.png", seed=1)
    png(tmp_path / "data" / "take.v2.png", seed=2)
    assert cli.main(["reconstruct", str(model), str(tmp_path / "data"), "--out", str(tmp_path / "rec"), "-q"]) == 0
    assert files_under(tmp_path / "rec") == ["take.v1.png", "take.v2.png"]
    assert cli.main(["encode", str(model), str(tmp_path / "data"), "--out", str(tmp_path / "tok"), "-q", "--per-file"]) == 0
    assert files_under(tmp_path / "tok") == ["take.v1.tokens", "take.v2.tokens"]
    assert cli.main(["decode", str(model), str(tmp_path / "tok"), "--out", str(tmp_path / "dec"), "-q"]) == 0
    assert files_under(tmp_path / "dec") == ["take.v1.png", "take.v2.png"]
