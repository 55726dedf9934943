"""`zoo` with the test-only toy family registered: for tests that need a real process (torchrun)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo import cli, registry  # noqa: E402

registry.FAMILIES = registry.FAMILIES + ("toy",)
_real = registry._module_name
registry._module_name = lambda name: "toy_family" if name == "toy" else _real(name)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
