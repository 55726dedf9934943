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


def parity_root() -> Path:
    """The folder of the parity fixtures, one subfolder per family: $ZOO_PARITY_DIR, else ../shared/parity."""
    return Path(os.environ.get("ZOO_PARITY_DIR", REPO.parent / "shared" / "parity"))


def parity_dir(family: str) -> Path:
    """The fixture folder of a family; skip (or fail under ZOO_REQUIRE_PARITY=1) when missing."""
    path = parity_root() / family
    if not path.is_dir():
        msg = f"parity fixture {path} not found (set ZOO_PARITY_DIR)"
        if os.environ.get("ZOO_REQUIRE_PARITY") == "1":
            pytest.fail(msg + "; ZOO_REQUIRE_PARITY=1 makes this a failure")
        pytest.skip(msg)
    return path


def parity_files(family: str, pattern: str = "keys_full*.tsv") -> list[Path]:
    """A family's fixture files matching pattern, for parametrizing at collection time: no skip here; none
    found gives an empty parameter set, which skips (fails under ZOO_REQUIRE_PARITY=1, see below)."""
    return sorted((parity_root() / family).glob(pattern))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ZOO_REQUIRE_PARITY=1 (CI), a test parametrized over parity_files(...) that found none fails
    instead of skipping; a missing fixture folder already fails in parity_dir."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("ZOO_REQUIRE_PARITY") == "1" and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "empty parameter set" in reason:
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
