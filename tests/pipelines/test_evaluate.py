import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from zoo import cli, hub, media


@pytest.fixture
def photos(tmp_path):
    from skimage import data

    folder = tmp_path / "photos"
    for name in ("astronaut", "coffee", "chelsea"):
        img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
        media.save_image(folder / f"{name}.png", media.resize_center_crop(img, 32))
    return folder


def test_eval_report_for_two_tokenizers(toy_registry, photos, tmp_path, monkeypatch, capsys):
    from toy_family import ToyConfig, ToyTokenizer

    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        ToyTokenizer(ToyConfig(image_size=32)).save_pretrained(tmp_path / "models" / name)
    rc = cli.main(["eval", str(tmp_path / "models" / "a"), str(tmp_path / "models" / "b"), str(photos),
                   "--report", str(tmp_path / "report"), "-q", "--no-rfid"])
    assert rc == 0
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert m["items"] == ["astronaut.png", "chelsea.png", "coffee.png"]
    assert set(m["tokenizers"]) == {str(tmp_path / "models" / "a"), str(tmp_path / "models" / "b")}
    for entry in m["tokenizers"].values():
        assert len(entry["per_item"]) == 3
        assert entry["mean"]["bits"] == 64 * 5  # 8x8 tokens of a 32-code book
        assert 0 < entry["mean"]["psnr"] < 60 and "rfid" not in entry["mean"]
        assert 0 < entry["mean"]["st_lpips_alex"] < 2  # the perceptual metric ran, not only PSNR/SSIM
    assert not [u for u in m["unavailable"] if u.startswith("st_lpips")], m["unavailable"]
    jpeg = m["baselines"]["jpeg"]
    assert [p["quality"] for p in jpeg] == [5, 10, 20, 35, 50, 75, 90]
    assert jpeg[0]["psnr"] < jpeg[-1]["psnr"] and jpeg[0]["bits"] < jpeg[-1]["bits"]
    html = (tmp_path / "report" / "report.html").read_text()
    import re

    srcs = re.findall(r"<img src='([^']+)'", html)
    assert "rd_psnr.png" in srcs and any(s.startswith("samples/") for s in srcs)
    for s in srcs:  # every image the page shows exists and is a real PNG
        with Image.open(tmp_path / "report" / s) as im:
            assert im.size[0] > 10
            im.load()  # decodes the whole file: a truncated PNG fails here
    assert {"rd_psnr.png", "rd_ssim.png"} <= {Path(s).name for s in srcs}


def test_eval_rejects_mixed_modalities_and_empty_data(toy_registry, tmp_path):
    from toy_family import ToyConfig, ToyTokenizer

    ToyTokenizer(ToyConfig()).save_pretrained(tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="No image files"):
        cli.main(["eval", str(tmp_path / "m"), str(tmp_path / "empty"), "--report", str(tmp_path / "r"), "-q"])
    with pytest.raises(SystemExit, match="model names, then the data"):
        cli.main(["eval", str(tmp_path / "m"), "--report", str(tmp_path / "r")])


def _heldout_folder(root: Path, size=(64, 96), extra=("train_photo",)) -> Path:
    """The held-out photo names of recipes/splits.yaml (plus photos not held out), as small PNGs."""
    from zoo.pipelines.splits import heldout

    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
    for name in (*heldout("photos"), *extra):
        img = torch.stack([xx, yy, xx * yy]) * 0.8 + 0.2 * torch.rand(3, *size, generator=g)
        media.save_image(root / f"{name}.png", img)
    return root


def test_eval_split_crops_steps_and_card_metrics(toy_registry, tmp_path):
    from toy_family import ToyConfig, ToyTokenizer

    from zoo.pipelines.evaluate import evaluate
    from zoo.pipelines.splits import heldout

    class SampledToy(ToyTokenizer):  # a stochastic decoder's signature: steps= and generator=
        seen = []

        def decode(self, tokens, steps=None, generator=None):
            self.seen.append((steps, generator.initial_seed()))
            return super().decode(tokens)

    torch.manual_seed(0)
    tok = SampledToy(ToyConfig(image_size=32)).eval()
    folder = _heldout_folder(tmp_path / "photos")
    r = evaluate({"toy": tok}, [folder], tmp_path / "report", split="photos", crop=32, steps=[1, 3], seed=7,
                 rfid=False, progress=False, command="zoo eval toy photos --split photos")
    names = heldout("photos")
    assert sorted(r["items"]) == sorted(f"{n}.png" for n in names)  # train_photo.png is not held out
    assert set(r["tokenizers"]) == {"toy @ 1 steps", "toy @ 3 steps"}
    assert {s for s, _ in SampledToy.seen} == {1, 3} and {g for _, g in SampledToy.seen} == {7}
    rows = r["tokenizers"]["toy @ 3 steps"]["per_item"]
    assert len(rows) == len(names) * 3 * 5 and rows[0]["item"].endswith("@0,0")  # 64x96: 3 x 5 crops on a 16 grid
    thumbs = r["baselines"]["thumbnail"]
    assert [t["side"] for t in thumbs] == [1, 2, 4, 8, 16] and thumbs[0]["psnr"] < thumbs[-1]["psnr"]
    assert thumbs[0]["bits"] == 24
    card = json.loads((tmp_path / "report" / "card" / f"{cli_slug('toy @ 3 steps')}.json").read_text())
    assert card["command"] == "zoo eval toy photos --split photos"
    assert "held-out photos split" in card["metrics"]["held-out data"] and card["metrics"]["decode"] == "steps=3, seed 7"
    assert card["metrics"]["psnr"] == round(r["tokenizers"]["toy @ 3 steps"]["mean"]["psnr"], 4)
    (folder / "rocket.png").unlink()
    with pytest.raises(ValueError, match="holds out .*rocket"):
        evaluate({"toy": tok}, [folder], tmp_path / "r2", split="photos", rfid=False, progress=False)


def test_eval_curve_of_a_variable_length_model_at_chosen_token_counts(tmp_path):
    """The embedded One-D-Piece decodes any prefix: `num_tokens` picks the curve's points (CLI path)."""
    folder = _heldout_folder(tmp_path / "photos", extra=())
    model = Path(__file__).resolve().parents[2] / "models" / "one_d_piece" / "tiny-64"
    rc = cli.main(["eval", str(model), str(folder), "--report", str(tmp_path / "report"), "-q", "--no-rfid",
                   "--split", "photos", "--crop", "64", "--num-tokens", "1", "4", "--max-items", "2"])
    assert rc == 0
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    entry = m["tokenizers"][str(model)]
    assert [p["num_tokens"] for p in entry["curve"]] == [1, 4] and len(entry["per_item"]) == 2 * 2  # 64x96: two 64x64 crops each
    card = json.loads((tmp_path / "report" / "card" / f"{cli_slug(str(model))}.json").read_text())
    assert card["command"].startswith("zoo eval ") and "--split photos" in card["command"]
    assert "PSNR / SSIM at 4 tokens" in " ".join(card["metrics"])


def cli_slug(name: str) -> str:
    from zoo.pipelines.evaluate import _slug

    return _slug(name)


def test_eval_of_the_embedded_speech_model_on_the_speech_split(tmp_path):
    """Speech metrics (and codec2 beside them where it is installed) for an audio family's embedded model."""
    wav, sr = media.load_audio(Path(__file__).resolve().parents[2] / "samples" / "speech_16k.wav")
    media.save_audio(tmp_path / "speech" / "speech_16k.wav", wav[:, : 2 * sr], sr)  # 2 s of the held-out clip
    media.save_audio(tmp_path / "speech" / "train.wav", wav[:, : sr], sr)  # not in the split: left out
    rc = cli.main(["eval", "xy-tokenizer-tiny-16k", str(tmp_path / "speech"), "--split", "speech", "--max-items", "1",
                   "--report", str(tmp_path / "report"), "-q"])
    assert rc == 0
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert m["items"] == ["speech_16k.wav"] and m["split"] == "speech"
    mean = m["tokenizers"]["xy-tokenizer-tiny-16k"]["mean"]
    assert mean["kbps"] == pytest.approx(0.8) and mean["mel_distance"] > 0
    assert set(m["baselines"]) == {"codec2 700C", "codec2 1200"} or any("codec2" in u for u in m["unavailable"])


def test_eval_of_the_embedded_vat_model_on_a_mesh(tmp_path):
    """Mesh metrics, the curve over first scales and the voxel baseline for VAT's embedded model (on a
    32^3 grid to stay quick)."""
    from zoo.pipelines.evaluate import evaluate

    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("igl")
    pytest.importorskip("skimage")
    (tmp_path / "meshes").mkdir()
    trimesh.creation.capsule(height=1.0, radius=0.4).export(tmp_path / "meshes" / "capsule.off")
    evaluate({"vat-tiny": hub.load("vat-tiny")}, [tmp_path / "meshes"], tmp_path / "report", resolution=32, progress=False)
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    entry = m["tokenizers"]["vat-tiny"]
    assert m["modality"] == "3d" and m["items"] == ["capsule.off"] and not m["failures"]
    assert 0 < entry["mean"]["fscore@0.05"] <= 1 and 0 < entry["mean"]["iou"] <= 1 and entry["mean"]["chamfer"] > 0
    assert [p["num_tokens"] for p in entry["curve"]] == [1, 3, 7, 15, 31]
    (voxels,) = m["baselines"].values()
    assert voxels[0]["bits"] <= entry["mean"]["bits"] * 1.02
    card = json.loads((tmp_path / "report" / "card" / "vat-tiny.json").read_text())
    assert "F-score@0.05 / IoU at 7 tokens (56 bits)" in card["metrics"]
