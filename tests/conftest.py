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


# "empty parameter set": a test parametrized over the fixture files (keys_full*.tsv) found none
_FIXTURE_WORDS = ("parity", "fixture", "keys_full", "ZOO_PARITY_DIR", "empty parameter set")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ZOO_REQUIRE_PARITY=1 (CI), a test that skips because a parity fixture or released key layout
    is missing fails instead, whichever helper decided to skip: no fixture check can pass silently."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("ZOO_REQUIRE_PARITY") == "1" and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if any(w in reason for w in _FIXTURE_WORDS):
            report.outcome = "failed"
            report.longrepr = f"ZOO_REQUIRE_PARITY=1 turns this skip into a failure: {reason}"


@pytest.fixture
def toy_registry(monkeypatch):
    """Add the test-only `toy` family (tests/toy_family.py) to the registry for one test."""
    from zoo import registry

    monkeypatch.setattr(registry, "FAMILIES", registry.FAMILIES + ("toy",))
    real = registry._module_name
    monkeypatch.setattr(registry, "_module_name", lambda name: "toy_family" if name == "toy" else real(name))
    return registry
