"""Distributed setup from the torchrun environment, model wrapping (DDP or FSDP2), mixed precision.

Run plainly (`python training/x.py recipe.yaml`) a program is one process with no process group.
Under `torchrun` the environment holds RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
`setup(os.environ)` joins the group with `nccl` on CUDA and `gloo` on CPU. The programs pass the
environment in, so nothing in zoo reads `os.environ` itself (STYLE rule 9). The DDP setup follows
nanoGPT's twenty lines; FSDP2 is `torch.distributed.fsdp.fully_shard` applied to each top-level child
with parameters, then to the root.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import sys
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

STRATEGIES = ("none", "ddp", "fsdp")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank among world_size processes, on `device`."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None when there is no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def setup(env: Mapping[str, str], device: str = "auto") -> DistInfo:
    """Join the torchrun process group described by `env` (pass `os.environ`), or stay single.

    device: "auto" (CUDA when available, else CPU), "cpu" or "cuda". Each process takes the GPU
    of its LOCAL_RANK. The backend is nccl for CUDA, gloo for CPU.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("The recipe asks for device: cuda, but torch sees no CUDA device. Use device: auto or cpu.")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    if world_size <= 1:
        dev = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        return DistInfo(device=dev)
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in env:
            raise RuntimeError(f"WORLD_SIZE={world_size} but {key} is not set; launch with torchrun.")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} has no GPU: this node has {torch.cuda.device_count()}. "
                "Launch at most that many processes per node (--nproc-per-node)."
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=dev if use_cuda else None)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# wrapping
# ----------------------------------------------------------------------------------------------
def wrap(model: nn.Module, strategy: str, info: DistInfo, *, find_unused_parameters: bool = False,
         forward_methods: tuple[str, ...] = ()) -> nn.Module:
    """Put `model` on the device and wrap it for data parallel training.

    strategy: "none" (single process only), "ddp" (DistributedDataParallel: parameters
    broadcast from rank 0), "fsdp" (FSDP2 `fully_shard`: each top-level child with parameters is
    one shard unit (the elements of a ModuleList), then the root; every rank must have built identical initial weights).
    forward_methods: "child.method" names (a family's `fsdp_forward_methods`) of methods that a training pass calls
    outside the child's forward; under FSDP2 they gather the child's parameters as its forward does.
    Strategy "fsdp" raises, in one process too (the recipe fails before any run), where a submodule says why FSDP2
    cannot train it (its `fsdp_unsupported()` returns a sentence; e.g. a VectorQuantizer restarting dead codes).
    A model without trainable parameters (fully frozen) is returned unwrapped.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    if strategy == "fsdp":
        for name, module in model.named_modules():
            reason = module.fsdp_unsupported() if callable(getattr(module, "fsdp_unsupported", None)) else None
            if reason:
                raise ValueError(f"train.strategy: fsdp cannot train this model: {type(model).__name__}.{name}: {reason}, "
                                 "and under FSDP2 that write lands in a gathered copy of the shards which is freed after "
                                 "the pass, so it would be lost. Use train.strategy: ddp.")
    model = model.to(info.device)
    if not info.distributed or not any(p.requires_grad for p in model.parameters()):
        if strategy != "none" and not info.distributed:
            pass  # one process: nothing to wrap; the same recipe runs plainly and under torchrun
        return model
    if strategy == "none":
        raise ValueError(f"strategy: none cannot train on {info.world_size} processes; use ddp or fsdp.")
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=find_unused_parameters)
    from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method

    units = []
    for child in model.children():  # containers have no forward: their elements become the units
        units += list(child.children()) if isinstance(child, (nn.ModuleList, nn.ModuleDict)) else [child]
    for unit in units:
        if any(p.requires_grad for p in unit.parameters()):
            fully_shard(unit)
    fully_shard(model)
    for name in forward_methods:
        child, _, method = name.rpartition(".")
        module = model.get_submodule(child)
        if not isinstance(module, FSDPModule):
            raise ValueError(f"{name}: {type(module).__name__} at {child!r} is not an FSDP2 shard unit (a top-level "
                             "child with trainable parameters), so its method cannot gather its parameters.")
        register_fsdp_forward_method(module, method)
    return model


def is_ddp(model: nn.Module) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a DDP wrapper (FSDP2 shards in place, so it is the module itself)."""
    return model.module if is_ddp(model) else model


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps (`enabled=False`). Wrap the micro-step's forward
    AND backward: DDP decides in forward, FSDP2 reads its flag in the backward hooks."""
    if enabled:
        yield
        return
    if is_ddp(model):
        with model.no_sync():
            yield
        return
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
        return
    yield


def clip_grad_norm(model: nn.Module, max_norm: float) -> Tensor:
    """Clip gradients by global norm (works for DDP and FSDP2 DTensor gradients); returns the norm."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return torch.zeros(())
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return norm


def all_reduce_mean(values: Mapping[str, float | Tensor], info: DistInfo) -> dict[str, float]:
    """Average scalar metrics over ranks (one collective); returns python floats."""
    names = sorted(values)
    if not names:
        return {}
    t = torch.tensor([float(values[k]) for k in names], dtype=torch.float64,
                     device=info.device if info.backend == "nccl" else "cpu")
    if info.distributed:
        dist.all_reduce(t)
        t /= info.world_size
    return dict(zip(names, t.tolist()))


# ----------------------------------------------------------------------------------------------
# mixed precision
# ----------------------------------------------------------------------------------------------
def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if precision != "auto":
        if device.type == "cpu" and precision == "fp16":
            raise ValueError("precision: fp16 needs a GPU; on CPU use fp32 or bf16.")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    """Autocast context for the resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (bf16 and fp32 need none); saved in checkpoints either way."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


# ----------------------------------------------------------------------------------------------
# logging
# ----------------------------------------------------------------------------------------------
def get_logger(name: str, info: DistInfo) -> logging.Logger:
    """A logger that prints INFO on rank 0 only and WARNING+ on every rank, prefixed with the rank."""
    logger = logging.getLogger(f"{name}.rank{info.rank}")
    logger.propagate = False
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {info.rank}/{info.world_size}] " if info.world_size > 1 else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if info.is_main else logging.WARNING)
    return logger


def forward_with(model: nn.Module, fn):
    """A callable that runs `fn(unwrapped model, ...)` as the model's forward, for training passes other than
    `forward` (a family's pass in zoo.train.<family>, a tokenizer's `flow_forward`, a whole loss: `loss_forward`).
    The call goes through the wrapper: DDP's forward (gradient sync) and FSDP2's forward hooks (sharded parameters
    gathered, the root's included); unwrapped, through the module's own hooks. Inside `fn` the class's forward is
    back: call `model.forward(x)` there, not `model(x)`, which would run the wrapper's hooks a second time."""
    inner = unwrap(model)

    def call(*args, **kwargs):
        def once(*a, **k):
            del inner.forward  # the class's forward again, for calls inside fn
            return fn(inner, *a, **k)

        inner.forward = once  # an instance attribute shadows the class's forward for one call
        try:
            return model(*args, **kwargs)
        finally:
            inner.__dict__.pop("forward", None)

    return call


def loss_forward(model: nn.Module, loss_fn):
    """`loss_fn(unwrapped model, item) -> (loss, {name: tensor to log})` computed whole as the model's forward
    (forward_with), the logged tensors detached: -> a callable item -> (loss, logged).

    DDP's reducer learns which parameters will get a gradient from the autograd graph of the forward's outputs
    (find_unused_parameters), or expects all of them; it all-reduces a bucket only once every parameter in it
    has its gradient. A pass that returns tensors the loss does not use (a quantizer loss weighted 0, a codebook
    bypassed in a continuous stage) leaves parameters in that graph that never get one, and the buckets holding
    them are never averaged. With the loss as the output, the graph DDP reads is exactly the one backward runs."""

    def fn(inner, item):
        loss, logged = loss_fn(inner, item)
        return loss, {k: v.detach() if isinstance(v, Tensor) else v for k, v in logged.items()}

    return forward_with(model, fn)


def check_gradients(model: nn.Module) -> None:
    """After a synchronised backward under DDP without find_unused_parameters: every trainable parameter must
    have a gradient, else DDP never averages the bucket holding it and the replicas drift apart. Raises naming
    them. A module whose forward did not run this step (no gradient at all) passes."""
    if not is_ddp(model) or model.find_unused_parameters:
        return
    trainable = [(n, p) for n, p in model.module.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    if missing and len(missing) < len(trainable):
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise RuntimeError(f"{len(missing)} trainable parameters of {type(model.module).__name__} got no gradient in "
                           f"this step ({shown}), so DDP cannot average the others; set "
                           "train.find_unused_parameters: true in the recipe.")
