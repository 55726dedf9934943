"""`zoo bench`: encode and decode throughput of one model at its device and precision.

Random input of the model's native size (audio: `seconds` of quiet noise at its rate; images: its
input size; 3D: its example point cloud). Each call is timed after one warm-up call (which is where
torch.compile pays its cost); the minimum of `repeats` calls is reported.
"""

from __future__ import annotations

import resource
import time

import torch
from torch import Tensor

from zoo.api import Tokenizer


def sync(device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int):
    out = fn()  # warm-up (and compilation)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_input(tok: Tokenizer, batch_size: int, seconds: float = 10.0, image_size: int | None = None,
                seed: int = 0) -> tuple[Tensor, dict]:
    """A random input of the model's native size: `(x, encode_kwargs)`."""
    g = torch.Generator().manual_seed(seed)
    x, kw = tok.example_input(batch_size, generator=g)
    if tok.modality == "audio":
        n = int(round(seconds * tok.sample_rate))
        if n < 1:
            raise ValueError(f"--seconds must give at least one sample; got {seconds}.")
        x = 0.1 * torch.randn(batch_size, x.shape[1], n, generator=g)
        kw = {**kw, "sample_rate": tok.sample_rate}
    elif tok.modality == "image" and image_size is not None:
        x = torch.rand(batch_size, 3, image_size, image_size, generator=g)
    return x, kw


def decode_kwargs(tok: Tokenizer) -> dict:
    # the same noise for every call and for the fp32 reference
    return {"generator": torch.Generator().manual_seed(0)} if tok.stochastic_decoder else {}


def peak_memory_mb(device) -> float:
    """Peak GPU memory allocated, or the process peak RSS on CPU, in MB."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def bench(tok: Tokenizer, *, batch_size: int = 1, seconds: float = 10.0, image_size: int | None = None,
          repeats: int = 3, reference: Tokenizer | None = None) -> dict:
    """Time encode and decode; with `reference` (the same weights in fp32), also the agreement."""
    if batch_size < 1 or repeats < 1:
        raise ValueError(f"batch_size and repeats must be at least 1; got {batch_size} and {repeats}.")
    device = tok.device
    x, kw = bench_input(tok, batch_size, seconds, image_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_enc, tokens = _timed(lambda: tok.encode(x, **kw), device, repeats)
    t_dec, out = _timed(lambda: tok.decode(tokens, **decode_kwargs(tok)), device, repeats)
    row = {
        "name": tok.variant or type(tok).__name__,
        "device": str(device),
        "precision": tok.precision,
        "compiled": tok.compiled,
        "batch_size": batch_size,
        "input": list(x.shape),
        "tokens_per_item": int(tokens.ids[0].numel()),
        "encode_s": round(t_enc, 5),
        "decode_s": round(t_dec, 5),
        "encode_items_per_s": round(batch_size / t_enc, 3),
        "decode_items_per_s": round(batch_size / t_dec, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }
    if tok.modality == "audio":
        row["encode_rtf"] = round(t_enc / (batch_size * seconds), 5)
        row["decode_rtf"] = round(t_dec / (batch_size * seconds), 5)
    if reference is not None:
        row.update(agreement(reference, tok, x, kw, tokens, out))
    return row


def agreement(reference: Tokenizer, tok: Tokenizer, x: Tensor, kw: dict, tokens=None, out=None) -> dict:
    """Share of ids equal to the reference's, and the reference's output decoded from its own ids vs ours
    from ours (PSNR in dB for images, SI-SDR in dB for audio)."""
    from zoo import metrics

    tokens = tokens if tokens is not None else tok.encode(x, **kw)
    out = out if out is not None else tok.decode(tokens, **decode_kwargs(tok))
    ref_tokens = reference.encode(x, **kw)
    ref_out = reference.decode(ref_tokens, **decode_kwargs(reference))
    row = {"ids_equal": round(float((tokens.ids.cpu() == ref_tokens.ids.cpu()).float().mean()), 5)}
    if isinstance(out, Tensor) and isinstance(ref_out, Tensor):
        a, b = out.detach().float().cpu(), ref_out.detach().float().cpu()
        if tok.modality == "image":
            row["decode_psnr_vs_fp32_db"] = round(float(metrics.psnr(a.clamp(0, 1), b.clamp(0, 1)).mean()), 2)
        elif tok.modality == "audio":
            n = min(a.shape[-1], b.shape[-1])
            row["decode_si_sdr_vs_fp32_db"] = round(float(metrics.si_sdr(a[..., :n], b[..., :n]).mean()), 2)
        else:
            row["decode_max_abs_diff"] = round(float((a - b).abs().max()), 5)
    return row
