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
