"""Nothing in zoo puts a stand-in into `sys.modules` or patches another package (issue 18): after
importing every zoo module and running every metric, each entry of `sys.modules` is a real module."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CODE = r"""
import importlib, pkgutil, sys, types
import torch
import zoo

names = sorted(m.name for m in pkgutil.walk_packages(zoo.__path__, "zoo."))
for name in names:
    importlib.import_module(name)

from zoo import media, metrics
from zoo.metrics.image import inception_networks

g = torch.Generator().manual_seed(0)
img = torch.rand(2, 3, 64, 64, generator=g)
print("st_lpips", float(metrics.st_lpips(img, img.flip(-1)).mean()))
inception_networks()
print("rfid-net ok")
wav, sr = media.load_audio(sys.argv[1])
clean = wav.reshape(-1, wav.shape[-1]).mean(0, keepdim=True)[:, : 3 * sr]  # [1, T]
noisy = clean + 0.01 * torch.randn(clean.shape, generator=g)
print("pesq", float(metrics.pesq(noisy, clean, sr, "wb")), "stoi", float(metrics.stoi(noisy, clean, sr)))
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.subplots()
# the standard library keeps two of its own (typing.io, typing.re); everything else must be a module
fake = {k: type(v).__name__ for k, v in list(sys.modules.items())
        if not isinstance(v, types.ModuleType) and k.split(".")[0] not in sys.stdlib_module_names}
print("modules", len(names), "fake", fake)
assert not fake, fake
"""


def test_no_stand_in_modules_after_every_import_and_metric():
    out = subprocess.run([sys.executable, "-c", CODE, str(REPO / "samples" / "speech_16k.wav")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "fake {}" in out.stdout, out.stdout
    assert "st_lpips" in out.stdout and "pesq" in out.stdout


def test_no_zoo_source_writes_sys_modules():
    bad = [f"{f.relative_to(REPO)}" for f in (REPO / "zoo").rglob("*.py") if "sys.modules[" in f.read_text()]
    assert not bad, bad
