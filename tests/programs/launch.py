"""Run a training program with the test-only toy families registered (they are not in zoo's
registry). Usable under torchrun:  torchrun --nproc-per-node 2 tests/programs/launch.py
training/train_autoencoder.py recipes/_smoke/autoencoder_image.yaml [overrides]"""

import runpy
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

import train_toys  # noqa: E402

train_toys.register()
program = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(program, run_name="__main__")
