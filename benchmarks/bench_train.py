"""Training throughput of the kit on CPU: steps/s, samples/s and peak memory per process for one tiny
config (the test-only toy image tokenizer, recipes/_smoke/autoencoder_image.yaml with its adversarial
stage), with 1 process and with 2 processes under torchrun (gloo, DDP). Prints a table.

    python benchmarks/bench_train.py [--steps 30]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "tests" / "programs" / "launch.py"
PEAK = "import atexit, resource, sys; atexit.register(lambda: print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr))"


def images(folder: Path) -> None:
    import torch

    sys.path.insert(0, str(REPO))
    from zoo.media.image import save_image

    g = torch.Generator().manual_seed(0)
    for i in range(16):
        save_image(folder / f"{i}.png", torch.rand(3, 40, 40, generator=g))


def run(nproc: int, steps: int, data: Path, out: Path) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # sitecustomize-free peak-memory report: wrap the launcher in `python -c`
    wrapper = out / "wrap.py"
    wrapper.write_text(PEAK + "\nimport runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')\n")
    args = [str(wrapper), str(LAUNCH), str(REPO / "training" / "train_autoencoder.py"),
            str(REPO / "recipes" / "_smoke" / "autoencoder_image.yaml"), f"data.paths=[{data}]", f"train.run_dir={out / 'run'}",
            f"train.steps={steps}", f"train.log_every={steps // 2}", f"train.ckpt_every={steps}", "data.batch_size=4"]
    cmd = [sys.executable, *args] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                                                      str(nproc), "--master-port", str(port), *args]
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]  # the second half of the run: warm, no start-up
    peaks = [float(line.split()[-1]) for line in p.stderr.splitlines() if line.startswith("PEAK_RSS_MB")]
    return {"procs": nproc, "steps_per_s": last["steps_per_s"], "samples_per_s": last["samples_per_s"],
            "peak_rss_mb": max(peaks) if peaks else float("nan")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        images(tmp / "data")
        results = []
        for n in (1, 2):
            (tmp / f"p{n}").mkdir()
            results.append(run(n, a.steps, tmp / "data", tmp / f"p{n}"))
    print(f"toy image autoencoder + PatchGAN, batch 4 per process, 16x16, {a.steps} steps, CPU, 1 thread per process")
    print(f"{'processes':>9} | {'steps/s':>8} | {'samples/s':>9} | {'peak RSS / process (MB)':>24} | {'samples/s vs 1 proc':>19}")
    base = results[0]["samples_per_s"]
    for r in results:
        print(f"{r['procs']:>9} | {r['steps_per_s']:>8.2f} | {r['samples_per_s']:>9.1f} | {r['peak_rss_mb']:>24.0f} | "
              f"{r['samples_per_s'] / base:>18.2f}x")


if __name__ == "__main__":
    main()
