"""Atomic training checkpoints and exact resume.

One file per save, `<run_dir>/checkpoints/step_<N>.pt`, written by rank 0 through
`zoo.io.atomic_write` (temporary file + rename: a crash mid-write leaves the previous checkpoint
intact), then the pointer `<run_dir>/checkpoints/latest` is replaced the same way. A checkpoint holds:

    models      full state dict of each model (generator, discriminator ...), gathered from FSDP shards
    optimizers  full optimiser state of each, keyed by parameter name (portable across wrappers)
    schedulers  each LR scheduler's state
    ema         EMA shadows (full tensors), when the run keeps one
    scalers     the fp16 GradScalers' states
    rng         python / numpy / torch (CPU and CUDA) generator states of EVERY rank
    step        optimiser steps done;  data: the data position (batches consumed by each rank)
    world_size  resume needs the same number of processes for an exact continuation

The first five are the run's `TrainParts`, which save and restore themselves.

`resume: auto` in a recipe: `latest_checkpoint(run_dir)` finds the newest complete checkpoint (or
none, then the run starts fresh). Every rank reads the same file, so multi-node runs need the run
directory on a shared filesystem.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from zoo.io import atomic_write, atomic_write_text
from zoo.train.distributed import DistInfo, barrier, is_ddp

CKPT_DIR = "checkpoints"
LATEST = "latest"
_NAME = re.compile(r"step_(\d+)\.pt$")


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _is_wrapped(model: nn.Module) -> bool:
    return is_ddp(model) or hasattr(model, "set_requires_gradient_sync")


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full state dict on CPU (rank 0 holds it under FSDP2; a collective there: call on every rank)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    if not _is_wrapped(model):
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return get_model_state_dict(model, options=_options())


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    if not _is_wrapped(model):
        model.load_state_dict(state, strict=True)
        return
    set_model_state_dict(model, dict(state), options=_options())


def rng_state() -> dict[str, Any]:
    """This process's generator states, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainParts:
    """The stateful parts of a run that a checkpoint saves and restores, each under its name
    (`save_checkpoint` / `load_checkpoint` take them as keyword arguments)."""

    models: Mapping[str, nn.Module]
    optimizers: Mapping[str, tuple[nn.Module, torch.optim.Optimizer]] = field(default_factory=dict)  # (model, its optimiser)
    schedulers: Mapping[str, Any] = field(default_factory=dict)
    ema: Any = None
    scalers: Mapping[str, torch.amp.GradScaler] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Full states on CPU (gathering FSDP shards is collective: every rank calls)."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state: dict[str, Any] = {"models": {name: model_state(m) for name, m in self.models.items()}}
        state["optimizers"] = {name: get_optimizer_state_dict(m, opt, options=_options()) for name, (m, opt) in self.optimizers.items()}
        state["schedulers"] = {name: s.state_dict() for name, s in self.schedulers.items()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        state["scalers"] = {name: s.state_dict() for name, s in self.scalers.items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any], path: str | Path) -> None:
        """Restore what `state_dict` wrote into checkpoint `path` (named in the errors)."""
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        for name, m in self.models.items():
            if name not in state["models"]:
                raise ValueError(f"Checkpoint {path} has no model {name!r}; it holds {sorted(state['models'])}.")
            load_model_state(m, state["models"][name])
        for name, (m, opt) in self.optimizers.items():
            set_optimizer_state_dict(m, opt, state["optimizers"][name], options=_options())
        for name, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][name])
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError(f"Checkpoint {path} has no EMA state but the recipe keeps one.")
            self.ema.load_state_dict(state["ema"])
        for name, s in self.scalers.items():
            if name in state["scalers"]:
                s.load_state_dict(state["scalers"][name])


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    info: DistInfo,
    *,
    data_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep: int = 2,
    **parts,
) -> Path | None:
    """Write a checkpoint at `step` (every rank must call: gathering is collective). Returns the path on rank 0.
    parts: the run's `TrainParts` (models=, optimizers=, schedulers=, ema=, scalers=)."""
    run = TrainParts(**parts)
    state: dict[str, Any] = {"step": int(step), "world_size": info.world_size, **run.state_dict()}
    state["data"] = dict(data_state or {})
    state["extra"] = dict(extra or {})
    state["replicas"] = check_replicas(run.models, info)
    mine = rng_state()
    if info.distributed:
        ranks: list[Any] = [None] * info.world_size
        dist.all_gather_object(ranks, mine)
    else:
        ranks = [mine]
    state["rng"] = ranks
    path = None
    if info.is_main:
        folder = Path(run_dir) / CKPT_DIR
        path = folder / f"step_{step:08d}.pt"
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        atomic_write_text(folder / LATEST, path.name + "\n")
        if keep > 0:
            for old in sorted(list_checkpoints(run_dir))[:-keep]:
                old[1].unlink(missing_ok=True)
    barrier(info)
    return path


def check_replicas(models: Mapping[str, nn.Module], info: DistInfo) -> dict[str, list[float]]:
    """Under DDP every rank holds a full replica: compare a checksum of each model's parameters
    across ranks and raise if they differ (a silent divergence would otherwise go unnoticed).
    Returns {model name: [checksum of rank 0, rank 1, ...]}; FSDP2 shards are not compared."""
    out = {}
    for name, m in models.items():
        params = [p.detach() for p in m.parameters()]
        if not params or any(hasattr(p, "device_mesh") for p in params):
            continue
        flat = torch.cat([p.flatten().double() for p in params])
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        mine = torch.stack([flat.sum(), (flat * weights).sum()]).cpu()
        if info.distributed:
            sums = [torch.zeros_like(mine) for _ in range(info.world_size)]
            dist.all_gather_object(sums, mine)
        else:
            sums = [mine]
        if any(not torch.equal(s, sums[0]) for s in sums):
            raise RuntimeError(f"The {name} replicas differ across ranks (checksums {[s.tolist() for s in sums]}); "
                               "the data-parallel setup is broken.")
        out[name] = [float(s[1]) for s in sums]
    return out


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / CKPT_DIR
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None. Temporary files of a save that was cut
    short are never candidates (they do not match the name pattern)."""
    folder = Path(run_dir) / CKPT_DIR
    pointer = folder / LATEST
    if pointer.is_file():
        p = folder / pointer.read_text().strip()
        if p.is_file():
            return p
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def resolve_resume(resume: str | None, run_dir: str | Path) -> Path | None:
    """Recipe `resume:` -> checkpoint path. None / "never": fresh; "auto": latest if any; else a path."""
    if resume in (None, "", "never", False):
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    p = Path(resume)
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is None:
            raise FileNotFoundError(f"resume: {resume} is a folder without checkpoints (looked in {p / CKPT_DIR}).")
        return found
    if not p.is_file():
        raise FileNotFoundError(f"resume: {resume} is not a checkpoint file, a run folder, 'auto' or 'never'.")
    return p


def load_checkpoint(path: str | Path, info: DistInfo, **parts) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote into the run's `TrainParts` (models=, optimizers=, ...) and
    this rank's generators; returns {"step", "data", "extra"}."""
    run = TrainParts(**parts)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Checkpoint {path} could not be read ({type(e).__name__}: {e}); it may be corrupt.") from e
    if state["world_size"] != info.world_size:
        raise ValueError(
            f"Checkpoint {path} was written by {state['world_size']} processes; this run has {info.world_size}. "
            "An exact resume needs the same number (the data order and RNG streams are per rank)."
        )
    run.load_state_dict(state, path)
    set_rng_state(state["rng"][info.rank])
    return {"step": state["step"], "data": state["data"], "extra": state["extra"]}


def export_pretrained(model: nn.Module, info: DistInfo, directory: str | Path, *, ema=None, **card_fields) -> Path | None:
    """Save the final tokenizer with `save_pretrained` (EMA weights when given), on rank 0.

    Gathers FSDP shards (collective: every rank calls), loads them into a fresh CPU copy of the
    model, and writes config.json + model.safetensors + README.md.
    """
    from zoo.train.distributed import unwrap

    state = model_state(model)
    if ema is not None:
        shadow = ema.state_dict()["shadow"]
    out = None
    if info.is_main:
        inner = unwrap(model)
        fresh = type(inner)(inner.cfg)
        if ema is not None:
            state = {k: (shadow[k].to(v.dtype) if k in shadow else v) for k, v in state.items()}
        fresh.load_state_dict(state, strict=True)
        fresh.variant = inner.variant
        out = fresh.float().eval().save_pretrained(directory, **card_fields)
    barrier(info)
    return out
