"""What a non-editable install gets (issue 18): the wheel carries every embedded default, and the
resolver finds them where the wheel puts them when there is no checkout beside the package."""

import sysconfig
import tomllib
from pathlib import Path

from zoo import hub, registry

REPO = Path(__file__).resolve().parents[1]


def test_every_embedded_default_is_in_the_wheel_data_files():
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    embedded = {v.embedded for _, v in registry.catalogue().values() if v.embedded}
    assert embedded, "the catalogue has no embedded defaults"
    for folder in sorted(embedded):
        target = f"share/tokenizer-zoo/models/{folder}"
        assert data_files.get(target) == [f"models/{folder}/*"], f"{folder} is not shipped in the wheel"
        assert (REPO / "models" / folder / "model.safetensors").is_file()
    assert len(data_files) == len(embedded), "data-files names a folder that is no embedded default"


def test_shelf_falls_back_to_the_installed_data_dir(tmp_path, monkeypatch):
    assert hub.shelf_dir() == REPO / "models"  # a source checkout wins
    fake_pkg = tmp_path / "site" / "zoo" / "hub.py"  # an installed package: no models/ beside it
    fake_pkg.parent.mkdir(parents=True)
    monkeypatch.setattr(hub, "__file__", str(fake_pkg))
    data = tmp_path / "prefix"
    (data / "share" / "tokenizer-zoo" / "models").mkdir(parents=True)
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *scheme: str(data))
    assert hub.shelf_dir() == data / "share" / "tokenizer-zoo" / "models"
