"""Test setup. HF_HUB_OFFLINE is read when huggingface_hub is imported, so it is set before anything
imports it: no test waits on the network."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

# Tiny test models run fastest on one thread, and tests that start subprocesses (torchrun) do not
# oversubscribe the cores.
torch.set_num_threads(1)


def parity_dir(family: str) -> Path:
    """The fixture folder of a family; skip (or fail under ZOO_REQUIRE_PARITY=1) when missing."""
    root = Path(os.environ.get("ZOO_PARITY_DIR", REPO.parent / "shared" / "parity"))
    path = root / family
    if not path.is_dir():
        msg = f"parity fixture {path} not found (set ZOO_PARITY_DIR)"
        if os.environ.get("ZOO_REQUIRE_PARITY") == "1":
            pytest.fail(msg + "; ZOO_REQUIRE_PARITY=1 makes this a failure")
        pytest.skip(msg)
    return path


@pytest.fixture
def toy_registry(monkeypatch):
    """Add the test-only `toy` family (tests/toy_family.py) to the registry for one test."""
    from zoo import registry

    monkeypatch.setattr(registry, "FAMILIES", registry.FAMILIES + ("toy",))
    real = registry._module_name
    monkeypatch.setattr(registry, "_module_name", lambda name: "toy_family" if name == "toy" else real(name))
    return registry
