"""Where and in what precision a tokenizer runs: device and precision names, the autocast scope, and
the fp32 islands a family's precision policy names.

A family declares its policy once, as `Tokenizer.fp32_modules`: the submodules that stay fp32 because
ids or numerics depend on them (quantizer distances and argmin / sign, STFT / iSTFT and mel front
ends), and, where a family measured that bf16 does not move its ids, `Tokenizer.bf16_modules` inside those
islands run in bf16 again. Everything else in encode / decode runs under `torch.autocast` at the chosen precision:
convolutions, attention, MLPs, flow and diffusion decoders. Precision "fp32" disables autocast
altogether, so the official numerics (and the parity fixtures) stay exact. Under bf16 / fp16 the
Linear and Conv weights outside the fp32 islands are also kept as a reduced-precision copy
(`cache_low_precision_weights`), so autocast does not cast them again in every call.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_PRECISION_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", torch.float32: "fp32",
    "bf16": "bf16", "bfloat16": "bf16", torch.bfloat16: "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", torch.float16: "fp16",
}
MAX_BATCH = 32  # items an exactly splittable encode / decode runs at once, unless the user says otherwise
DEVICES_ACCEPTED = "'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present)"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' / None -> CUDA when present, else CPU; 'cpu', 'cuda', 'cuda:N' checked against this machine."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"Unknown device {device!r}; accepted: {DEVICES_ACCEPTED}.") from e
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"Device {device!r} is not supported; accepted: {DEVICES_ACCEPTED}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {device!r} asked for, but CUDA is not available here (torch.cuda.is_available() is False); "
                "use device='cpu' or 'auto'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"Device {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s).")
    return dev


def resolve_precision(precision: str | torch.dtype | None) -> str:
    """'fp32' | 'bf16' | 'fp16' (and the torch dtype names) -> the short name."""
    if precision is None:
        return "fp32"
    key = precision.lower() if isinstance(precision, str) else precision
    if key not in _PRECISION_ALIASES:
        raise ValueError(f"Unknown precision {precision!r}; accepted: 'fp32' (default, exact), 'bf16', 'fp16'.")
    return _PRECISION_ALIASES[key]


def autocast(device: torch.device, precision: str):
    """The scope encode / decode run in: autocast at `precision`, or nothing at all for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def _to_fp32(value: Any) -> Any:
    """Floating tensors (in tuples, lists, dicts) -> fp32; everything else unchanged."""
    if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_fp32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_fp32(v) for k, v in value.items()}
    return value


def autocast_off() -> contextlib.ExitStack:
    """A scope with autocast disabled on every device type that has it here."""
    ctx = contextlib.ExitStack()
    for device_type in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
        ctx.enter_context(torch.autocast(device_type=device_type, enabled=False))
    return ctx


def fp32(fn):
    """Decorator: `fn` runs in fp32 whatever autocast is active around it (floating tensor arguments
    are cast to fp32, autocast is off inside). Quantizers use it on the methods that compute ids."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with autocast_off():
            return fn(*_to_fp32(args), **{k: _to_fp32(v) for k, v in kwargs.items()})

    wrapper.__zoo_fp32__ = True
    return wrapper


def _around_forward(module: nn.Module, scope, cast=None) -> list:
    """Hooks that hold the context manager `scope(args)` entered while `module`'s forward runs, with its inputs
    mapped by `cast` (if given). Returns the hook handles (remove them to undo)."""
    stack: list = []

    def pre(mod, args, kwargs):
        ctx = scope(args)
        ctx.__enter__()
        stack.append(ctx)
        if cast is not None:
            return cast(args), {k: cast(v) for k, v in kwargs.items()}
        return None

    def post(mod, args, kwargs, output):
        if stack:
            stack.pop().__exit__(None, None, None)
        return None

    return [
        module.register_forward_pre_hook(pre, with_kwargs=True),
        module.register_forward_hook(post, with_kwargs=True, always_call=True),
    ]


def keep_fp32(module: nn.Module) -> list:
    """Make `module` run in fp32 whatever autocast is active around it: its floating inputs are cast to
    fp32 and autocast is off inside its forward. Returns the hook handles (remove them to undo)."""
    return _around_forward(module, lambda args: autocast_off(), cast=_to_fp32)


def autocast_within(module: nn.Module, dtype: torch.dtype) -> list:
    """Make `module` run under autocast at `dtype` (on its input's device) even inside an fp32 island: a
    family's measured exception to its own policy (`Tokenizer.bf16_modules`). Returns the hook handles."""

    def scope(args):
        x = next((a for a in args if isinstance(a, Tensor)), None)
        return torch.autocast(device_type=x.device.type if x is not None else "cpu", dtype=dtype)

    return _around_forward(module, scope)


_CAST_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)


def keep_freed_cpu_memory(limit_mb: int = 1024) -> bool:
    """Ask glibc's malloc to keep freed memory for reuse, process-wide. By default it hands large blocks back
    to the OS as soon as they are freed, so big activations of the next op fault in fresh zeroed pages: 10-20%
    of a WavTokenizer encode on CPU (10 s clip, batch 1; 2.7x the page faults). Afterwards blocks
    up to 32 MB (glibc's largest setting) come from the heap, and up to `limit_mb` of freed heap stays in the
    process (RSS stays near its peak). The zoo CLI calls it (ZOO_KEEP_FREED_MEMORY=0 turns that off); library
    users opt in. Returns False where the C library is not glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h> constants
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, int(limit_mb) << 20))


def cache_low_precision_weights(model: nn.Module, dtype: torch.dtype, skip: tuple[nn.Module, ...] = ()) -> list:
    """Keep a `dtype` copy of each Linear / Conv weight and bias outside `skip` and use it in inference
    under autocast, instead of autocast casting the fp32 weights again in every call (10-15% of a
    single-pass decode on CPU). The fp32 parameters stay as they are (state_dict, training, fp32 runs);
    a copy is remade when its parameter changes. Returns the hook handles (remove them to undo)."""
    skipped = {id(m) for s in skip for m in s.modules()}
    handles = []
    for module in model.modules():
        if not isinstance(module, _CAST_LAYERS) or id(module) in skipped or parametrize.is_parametrized(module):
            continue
        cache: dict[str, tuple[tuple, Tensor]] = {}
        saved: list[dict[str, nn.Parameter]] = []

        def pre(mod, args, cache=cache, saved=saved):
            x = next((a for a in args if isinstance(a, Tensor)), None)
            if x is None or not torch.is_inference_mode_enabled() or not torch.is_autocast_enabled(x.device.type):
                return
            originals = {}
            for name in ("weight", "bias"):
                p = mod._parameters.get(name)
                if p is None:
                    continue
                key = (p.data_ptr(), p._version, p.device, dtype)
                if name not in cache or cache[name][0] != key:
                    cache[name] = (key, p.detach().to(dtype))
                originals[name] = p
                mod._parameters[name] = cache[name][1]  # a plain tensor for this call: autocast leaves it as it is
            saved.append(originals)

        def post(mod, args, output, saved=saved):
            if saved:
                mod._parameters.update(saved.pop())

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post, always_call=True)]
    return handles


def move_to(value: Any, device: torch.device) -> Any:
    """Tensors (and Tokens, lists, tuples, dicts of them) -> `device`; other values unchanged."""
    if isinstance(value, Tensor):
        return value.to(device)
    if hasattr(value, "ids") and hasattr(value, "to") and not isinstance(value, nn.Module):  # Tokens
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    return value


def media_out(value: Any) -> Any:
    """Floating outputs of a reduced-precision decode come back as fp32 media."""
    return _to_fp32(value)
