"""Fixtures for the training-program tests: the toy families in the registry, small real-looking
data folders, and running a program in this process."""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "training"
SMOKE = REPO / "recipes" / "_smoke"


@pytest.fixture
def toys(monkeypatch):
    """Register toy, toy_audio and toy_flow for one test (restored afterwards)."""
    import train_toys
    from zoo import registry

    for name, spec in (("toy_audio", train_toys.TOY_AUDIO), ("toy_flow", train_toys.TOY_FLOW)):
        mod = types.ModuleType(train_toys.MODULES[name])
        mod.FAMILY = spec
        monkeypatch.setitem(sys.modules, train_toys.MODULES[name], mod)
    monkeypatch.setattr(registry, "FAMILIES", tuple(registry.FAMILIES) + tuple(train_toys.MODULES))
    from zoo.train.families import HOOKS

    for name, h in train_toys.toy_hooks().items():
        monkeypatch.setitem(HOOKS, name, h)
    real = registry._module_name
    monkeypatch.setattr(registry, "_module_name", lambda n: train_toys.MODULES.get(n) or real(n))
    return registry


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    """Six small RGB images (smooth gradients with texture) for image smoke runs."""
    from zoo.media.image import save_image

    d = tmp_path_factory.mktemp("images")
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 28), torch.linspace(0, 1, 36), indexing="ij")
    for i in range(6):
        c = torch.rand(3, 1, 1, generator=g)
        img = (c * xx + (1 - c) * yy + 0.1 * torch.rand(3, 28, 36, generator=g)).clamp(0, 1)
        save_image(d / f"img{i}.png", img)
    return d


@pytest.fixture(scope="session")
def mesh_dir(tmp_path_factory) -> Path:
    """Four small watertight meshes (trimesh primitives) for VAT smoke runs."""
    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("igl")
    d = tmp_path_factory.mktemp("meshes")
    for name, m in (("box", trimesh.creation.box((1.0, 0.6, 0.4))), ("ball", trimesh.creation.icosphere(2)),
                    ("capsule", trimesh.creation.capsule(1.0, 0.3)), ("cylinder", trimesh.creation.cylinder(0.4, 1.2))):
        m.export(d / f"{name}.ply")
    return d


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The repository's speech sample (samples/speech_16k.wav) for audio smoke runs."""
    return REPO / "samples"


def program(name: str):
    """The training program module (a plain script, loaded by path: training/ is never imported as a package)."""
    return types.SimpleNamespace(**runpy.run_path(str(PROGRAMS / f"{name}.py"), run_name=f"zoo_program_{name}"))


def run(name: str, recipe: str, overrides: list[str]):
    from zoo.train.recipe import read_recipe

    mod = program(name)
    cfg = read_recipe(mod.ProgramConfig, SMOKE / recipe, overrides, program=name)
    return mod.main(cfg, env={})
