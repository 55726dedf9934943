"""The `zoo` command, run in-process through zoo.cli.main (and once as a real subprocess)."""

import json
import subprocess
import sys

import pytest
import torch

from zoo import cli, hub, media


@pytest.fixture
def toy_shelf(toy_registry, tmp_path, monkeypatch):
    from toy_family import ToyConfig, ToyTokenizer

    torch.manual_seed(0)
    m = ToyTokenizer(ToyConfig())
    m.save_pretrained(tmp_path / "models" / "toy" / "embedded")
    monkeypatch.setattr(hub, "shelf_dir", lambda: tmp_path / "models")
    return tmp_path


def test_help_for_every_command():
    for cmd in ("list", "info", "encode", "decode", "reconstruct", "convert", "cards", "push"):
        out = subprocess.run([sys.executable, "-m", "zoo.cli", cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage: zoo " + cmd in out.stdout


def test_list_and_info(toy_shelf, capsys):
    assert cli.main(["list", "toy*"]) == 0
    out = capsys.readouterr().out
    assert "toy-16" in out and "toy-embedded" in out
    assert cli.main(["list", "nothing*"]) == 1
    capsys.readouterr()
    assert cli.main(["info", "toy-16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "toy" and info["parameters"] > 0 and info["license"] == "mit"
    with pytest.raises(SystemExit, match="Closest: toy-16"):
        cli.main(["info", "toy-61"])


def test_encode_decode_reconstruct_folder(toy_shelf, capsys):
    d = toy_shelf / "imgs"
    (d / "sub").mkdir(parents=True)
    for i, size in enumerate([(16, 16), (16, 16), (40, 30)]):
        media.save_image(d / ("sub" if i == 2 else "") / f"im{i}.png", torch.rand(3, *size))
    (d / "broken.png").write_bytes(b"not a png")
    out = toy_shelf / "out"
    rc = cli.main(["encode", "toy-embedded", str(d), "--out", str(out / "tok"), "-q", "--per-file"])
    assert rc == 1  # the broken file is reported, the others are encoded
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 of 4" in err
    toks = sorted(p.relative_to(out / "tok").as_posix() for p in (out / "tok").rglob("*.tokens"))
    assert toks == ["im0.tokens", "im1.tokens", "sub/im2.tokens"]
    with pytest.raises(SystemExit, match="broken.png"):
        cli.main(["encode", "toy-embedded", str(d), "--out", str(out / "strict"), "--strict", "-q", "--per-file"])
    assert cli.main(["decode", "toy-embedded", str(out / "tok"), "--out", str(out / "dec"), "-q"]) == 0
    assert sorted(p.name for p in (out / "dec").rglob("*.png")) == ["im0.png", "im1.png", "im2.png"]
    assert media.load_image(out / "dec" / "sub" / "im2.png").shape == (3, 16, 16)
    # the default output is token shards, decoded to the same images
    capsys.readouterr()
    assert cli.main(["encode", "toy-embedded", str(d), "--out", str(out / "shards"), "-q"]) == 1
    assert "3 item(s) encoded into 1 shard(s)" in capsys.readouterr().out
    assert cli.main(["decode", "toy-embedded", str(out / "shards"), "--out", str(out / "dec2"), "-q"]) == 0
    for name in ("im0.png", "im1.png", "sub/im2.png"):
        assert torch.equal(media.load_image(out / "dec" / name), media.load_image(out / "dec2" / name))
    capsys.readouterr()
    assert cli.main(["reconstruct", "toy-embedded", str(d / "im0.png"), "--out", str(out / "rec"), "--metrics", "-q"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["tokens"] == 16 and "psnr_db" in row
    assert json.loads((out / "rec" / "metrics.json").read_text())[0]["psnr_db"] == row["psnr_db"]


def test_convert_and_push_errors(toy_shelf, capsys):
    from safetensors.torch import save_file

    from toy_family import ToyConfig, ToyTokenizer

    m = ToyTokenizer(ToyConfig())
    sd = {k.replace("encoder.", "enc.").replace("quantizer.codebook", "vq.embed").replace("decoder.", "dec."): v
          for k, v in m.state_dict().items()}
    save_file(sd, str(toy_shelf / "official.safetensors"))
    assert cli.main(["convert", "toy", "--checkpoint", str(toy_shelf / "official.safetensors"), "--out", str(toy_shelf / "conv")]) == 0
    assert (toy_shelf / "conv" / "model.safetensors").is_file()
    with pytest.raises(SystemExit, match="No checkpoint file"):
        cli.main(["convert", "toy", "--checkpoint", str(toy_shelf / "nope.ckpt"), "--out", str(toy_shelf / "c2")])
    with pytest.raises(SystemExit, match="no config.json"):
        cli.main(["push", str(toy_shelf), "me/x"])


def test_3d_files_go_through_the_cli(tmp_path):
    """Meshes are read as surface points (zoo.media.mesh) and encoded to multiscale tokens."""
    import trimesh

    from zoo import registry
    from zoo.api import Tokens

    spec = registry.family("vat")
    torch.manual_seed(0)
    spec.tokenizer(spec.tiny_config).save_pretrained(tmp_path / "vat")
    trimesh.creation.icosphere(subdivisions=2).export(tmp_path / "sphere.obj")
    (tmp_path / "broken.obj").write_text("this is not a mesh")
    rc = cli.main(["encode", str(tmp_path / "vat"), str(tmp_path / "sphere.obj"), str(tmp_path / "broken.obj"),
                   "--out", str(tmp_path / "out"), "--per-file", "-q"])
    assert rc == 1  # the broken file is reported, the sphere is encoded
    t = Tokens.load(tmp_path / "out" / "sphere.tokens")
    assert t.layout == "multiscale" and t.ids.shape[1] == sum(t.meta["scale_sizes"])
