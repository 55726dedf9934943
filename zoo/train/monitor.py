"""Metrics to files and screen, on the main rank only: JSONL (one object per logged step),
TensorBoard (imported lazily; skipped with one warning when not installed) and a tqdm bar showing
loss and throughput."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping


class Monitor:
    def __init__(self, run_dir: str | Path, *, enabled: bool, total_steps: int, start_step: int = 0,
                 tensorboard: bool = True, progress: bool = True, logger=None):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._jsonl = None
        self._tb = None
        self._bar = None
        self._t = time.perf_counter()
        self._last_step = start_step
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_step or None)
            except ImportError:
                if logger:
                    logger.warning("tensorboard is not installed (pip install 'tokenizer-zoo[train]'); logging JSONL only.")
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True, desc="train")

    def log(self, step: int, metrics: Mapping[str, float], samples: int) -> dict[str, float]:
        """Record `metrics` at `step`; `samples`: samples processed (all ranks) since the last call."""
        now = time.perf_counter()
        dt, dsteps = now - self._t, max(step - self._last_step, 1)
        self._t, self._last_step = now, step
        row = {k: float(v) for k, v in metrics.items()}
        row["steps_per_s"] = dsteps / dt if dt > 0 else 0.0
        row["samples_per_s"] = samples / dt if dt > 0 else 0.0
        if not self.enabled:
            return row
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **row}) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                self._tb.add_scalar(k, v, step)
        if self._bar is not None:
            self._bar.n = step
            loss = row.get("loss", float("nan"))
            self._bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{row['samples_per_s']:.1f}", refresh=False)
            self._bar.refresh()
        return row

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._jsonl is not None:
            self._jsonl.close()
