"""Recipes: YAML files read strictly into dataclasses, and the model a recipe asks for.

A recipe is a YAML mapping; `base: other.yaml` (relative to the recipe, one level only) supplies
defaults that the recipe's own keys override, section by section. `parse(ProgramConfig, data)`
builds the dataclass tree and fails on any unknown key, naming where it is and what is accepted.
Command-line overrides `section.key=value` (values parsed as YAML) are applied before parsing.

`model:` either builds a new tokenizer, `{family: wavtokenizer, config: {...}}`, or starts from
trained weights, `{init_from: <catalogue name | folder | hub id>}` (via `zoo.load`); `freeze:` lists
top-level parts (`encoder`, `quantizer`, ...) whose weights stay fixed and which stay in eval mode.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from zoo.train.data import DataConfig
from zoo.train.optim import OptimConfig


# ----------------------------------------------------------------------------------------------
# common recipe sections
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelConfig:
    family: str | None = None  # a zoo family module name, e.g. "wavtokenizer" (new model)
    config: dict = field(default_factory=dict)  # that family's config fields (defaults: main variant)
    init_from: str | None = None  # catalogue name, folder or hub id to start from (fine-tuning)
    freeze: tuple[str, ...] = ()  # top-level parts kept fixed, e.g. [encoder, quantizer]


@dataclass(frozen=True)
class TrainConfig:
    run_dir: str = "runs/run"  # checkpoints, metrics.jsonl, tensorboard/, final/ go here
    steps: int = 1000  # optimiser steps in total
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    strategy: str = "ddp"  # ddp | fsdp (used only under torchrun with more than one process)
    find_unused_parameters: bool = False  # DDP: set when some parameters get no gradient in a step
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    grad_accum: int = 1  # micro-batches per optimiser step
    clip_grad_norm: float = 0.0  # 0 = no clipping
    ema_decay: float = 0.0  # 0 = no EMA; else e.g. 0.999 (the final model is saved with EMA weights)
    log_every: int = 10
    ckpt_every: int = 500  # also saved at the last step
    keep_checkpoints: int = 2
    resume: str = "auto"  # auto (latest in run_dir, if any) | never | a checkpoint path
    tensorboard: bool = True
    progress: bool = True


@dataclass(frozen=True)
class ProgramSections:
    """The sections every training program's recipe has; a program's ProgramConfig adds its own (loss, flow ...)."""

    program: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
def load_yaml(path: str | Path) -> dict:
    """Read a recipe, resolving one level of `base:`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No recipe at {path}.")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"Recipe {path} must be a YAML mapping; got {type(data).__name__}.")
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = (path.parent / base).resolve()
    base_data = yaml.safe_load(base_path.read_text()) if base_path.is_file() else None
    if base_data is None:
        raise FileNotFoundError(f"Recipe {path} names base: {base}, but {base_path} does not exist.")
    if "base" in base_data:
        raise ValueError(f"Recipe {base_path} (the base of {path}) has its own base:; only one level is allowed.")
    return merge(base_data, data)


def merge(base: Mapping, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """`["train.steps=2", "data.paths=[a, b]"]` -> a copy of `data` with those keys set."""
    import copy

    import yaml

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"Override {item!r} must look like section.key=value.")
        key, value = item.split("=", 1)
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"Override {item!r}: {p} is not a section.")
        node[parts[-1]] = yaml.safe_load(value)
    return data


def parse(cls, data: Any, where: str = "recipe"):
    """Build dataclass `cls` from `data` strictly: unknown keys are errors; nested dataclasses,
    tuples of dataclasses and Optional fields are followed."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping for {cls.__name__}; got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; {cls.__name__} accepts {sorted(names)}.")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def _convert(tp, value, where):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value or {}, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where) if len(args) == 1 else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list; got {value!r}.")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        if len(args) == 2 and args[1] is Ellipsis or len(args) == 1:
            return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where} needs {len(args)} values; got {len(value)}.")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where} must be {tp.__name__}; got {value!r}.")
    return value


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Recipe file (+ overrides) -> the plain mapping. A tool that reads only some sections of a program's
    recipe (training/fit_proxy_teacher.py) parses each with `parse(ModelConfig, data["model"], ...)`."""
    return apply_overrides(load_yaml(path), overrides)


def read_recipe(cls, path: str | Path, overrides: Sequence[str] = (), program: str | None = None):
    """Recipe file (+ overrides) -> `cls` instance. When the recipe names `program:`, it must be `program`."""
    data = load_recipe(path, overrides)
    named = data.get("program")
    if program and named and named != program:
        raise ValueError(f"Recipe {path} is for program {named!r}; this is {program!r}. Run training/{named}.py.")
    return parse(cls, data, where=str(path))


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------
def build_tokenizer(cfg: ModelConfig):
    """ModelConfig -> Tokenizer in train mode, fp32 on CPU (the caller moves and wraps it)."""
    from zoo import hub, registry

    if bool(cfg.family) == bool(cfg.init_from):
        raise ValueError("model: give exactly one of `family` (with `config`) for a new model, or `init_from` to fine-tune.")
    if cfg.init_from:
        if cfg.config:
            raise ValueError("model.config cannot change a model loaded with init_from; drop it or train a new model.")
        model = hub.load(cfg.init_from)
    else:
        spec = registry.family(cfg.family)
        model = spec.tokenizer(spec.tokenizer.config_from_dict(dict(cfg.config)))
    freeze(model, cfg.freeze)
    return model.train()


def freeze(model: nn.Module, parts: Sequence[str]) -> None:
    """Fix the weights of the named top-level parts (requires_grad False)."""
    children = dict(model.named_children())
    for name in parts:
        if name not in children:
            raise ValueError(f"model.freeze names {name!r}, but {type(model).__name__} has no such part; "
                             f"its top-level parts are {sorted(children)}.")
        children[name].requires_grad_(False)


def set_train_mode(model: nn.Module, frozen: Sequence[str]) -> None:
    """model.train(), with frozen parts in eval mode (no dropout, no BN or EMA-codebook updates)."""
    model.train()
    for name in frozen:
        getattr(model, name).eval()
