"""benchmarks/eval_image_tiny.py: the held-out crop grid and the same-bytes baselines."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "eval_image_tiny.py"


def test_crop_grid_and_same_bytes_baselines(tmp_path):
    from zoo.media import save_image

    ev = runpy.run_path(str(SCRIPT), run_name="eval_image_tiny")
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    save_image(tmp_path / "a.png", torch.stack([xx, yy, xx * yy]) * 0.8 + 0.2 * torch.rand(3, 96, 128, generator=g))
    x, names = ev["heldout_crops"](tmp_path)
    assert x.shape == (2 * 3, 3, 64, 64) and names[0] == "a@0,0" and names[-1] == "a@32,64"  # stride-32 grid

    tables = {"JPEG": ev["codec_table"](x[:2], "JPEG"), "WEBP": ev["codec_table"](x[:2], "WEBP")}
    smallest_jpeg = max(rows[0][0] for rows in tables["JPEG"])
    big = ev["baselines_at"](x[:2], 100_000, tables)  # every quality fits: the best one is picked
    assert big["jpeg"]["reached"] == "2/2" and big["webp"]["reached"] == "2/2"
    tiny = ev["baselines_at"](x[:2], 5, tables)  # no file of 5 bytes exists
    assert tiny["jpeg"] == {"reached": "0/2"} and tiny["webp"] == {"reached": "0/2"}
    assert tiny["thumb"]["n"] == 1 and tiny["thumb"]["bytes"] == 3
    mid = ev["baselines_at"](x[:2], smallest_jpeg, tables)
    assert mid["jpeg"]["reached"] == "2/2" and mid["jpeg"]["mean_bytes"] <= smallest_jpeg
    assert big["jpeg"]["psnr"] > mid["jpeg"]["psnr"] + 3 and big["jpeg"]["mean_bytes"] > smallest_jpeg
    assert ev["fmt_base"](tiny["jpeg"]).startswith("unreachable")
