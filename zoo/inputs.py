"""Input checks the families share: raise early at the API boundary, naming the problem and what is
accepted; never silently fix. Also the fewest-tokens search of the ordered 1D families."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.signal import check_sample_rate, resample


def check_finite(x: Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{what} contains {bad} NaN or infinite value(s); clean the input first.")


def prepare_images(x, *, name: str, multiple_of: int | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """Check an image batch `[B, 3, H, W]` float in [0, 1] and return it as fp32.

    `multiple_of`: H and W must be divisible by it. `size`: H, W must equal it exactly.
    """
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} encodes image tensors [B, 3, H, W] in [0, 1]; got {type(x).__name__}. "
            "Read files with zoo.media.load_image()."
        )
    if x.dim() == 3:
        raise ValueError(f"{name} expects a batch [B, 3, H, W]; got shape {list(x.shape)}. Use x.unsqueeze(0).")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} expects RGB images [B, 3, H, W]; got shape {list(x.shape)}.")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} got an empty image batch of shape {list(x.shape)}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects float images in [0, 1]; got {x.dtype}. Divide uint8 images by 255.")
    check_finite(x, f"{name} input")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name} expects images in [0, 1]; got values in [{lo:.3g}, {hi:.3g}].")
    h, w = x.shape[-2:]
    if size is not None and (h, w) != tuple(size):
        raise ValueError(f"{name} takes {size[0]}x{size[1]} images; got {h}x{w}. Resize or crop first (zoo.media.resize_center_crop).")
    if multiple_of and (h % multiple_of or w % multiple_of):
        raise ValueError(f"{name} needs image sides divisible by {multiple_of}; got {h}x{w}.")
    return x.float()


def pad_clips(clips, lengths, *, name: str) -> tuple[Tensor, list[int]]:
    """Audio families' list-of-clips input: [clip [C, T_i] or [T_i], ...] -> (batch [B, C, max T_i]
    zero-padded, [T_i, ...]). `lengths` must be None (the list gives them)."""
    if lengths is not None:
        raise ValueError(f"{name}.encode: pass lengths= only with a padded batch tensor, not with a list of clips.")
    if not clips:
        raise ValueError(f"{name}.encode got an empty list of clips.")
    items = []
    for i, c in enumerate(clips):
        if not isinstance(c, Tensor):
            raise TypeError(f"{name}.encode: clip {i} is a {type(c).__name__}; pass tensors [T] or [C, T].")
        c = c[None] if c.dim() == 1 else c
        if c.dim() != 2:
            raise ValueError(f"{name}.encode: clip {i} must be [T] or [C, T]; got shape {list(c.shape)}.")
        items.append(c)
    if len({c.shape[0] for c in items}) != 1:
        raise ValueError(f"{name}.encode: clips have different channel counts {[c.shape[0] for c in items]}.")
    lens = [int(c.shape[-1]) for c in items]
    batch = items[0].new_zeros(len(items), items[0].shape[0], max(lens))
    for i, c in enumerate(items):
        batch[i, :, : c.shape[-1]] = c
    return batch, lens


# Tensors a little over full scale pass (lossy decoders, resamplers and test noise overshoot [-1, 1]);
# audio scaled like integers, or otherwise far outside [-1, 1], is refused. Float files are held to
# [-1, 1] exactly when they are read (zoo.media.audio.decode_audio).
AUDIO_PEAK_LIMIT = 2.0


def prepare_audio(
    x,
    *,
    name: str,
    sample_rate: int | None,
    model_rate: int,
    mono: bool = False,
    channels: int = 1,
) -> Tensor:
    """Check audio `[B, C, T]` in [-1, 1] and bring it to the model's rate and channel count.

    A different `sample_rate` is resampled (torchaudio). Extra channels are mixed down only when
    `mono=True`; otherwise a clear error names the fix.
    """
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} encodes audio tensors [B, C, T]; got {type(x).__name__}. Read files with zoo.media.load_audio()."
        )
    if sample_rate is None:
        raise ValueError(f"{name}.encode needs sample_rate= (the model runs at {model_rate} Hz; other rates are resampled).")
    sample_rate = check_sample_rate(sample_rate, f"{name}.encode input")
    if x.dim() == 1:
        raise ValueError(f"{name} expects audio [B, C, T]; got a 1D tensor of shape {list(x.shape)}. Use x[None, None].")
    if x.dim() == 2:
        raise ValueError(f"{name} expects audio [B, C, T]; got shape {list(x.shape)}. Use x.unsqueeze(1) for mono [B, T].")
    if x.dim() != 3:
        raise ValueError(f"{name} expects audio [B, C, T]; got shape {list(x.shape)}.")
    if x.shape[0] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} got empty audio of shape {list(x.shape)}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects float audio in [-1, 1]; got {x.dtype}. Divide int16 PCM by 32768.")
    check_finite(x, f"{name} input audio")
    peak = float(x.abs().max())
    if peak > AUDIO_PEAK_LIMIT:
        raise ValueError(f"{name} expects audio in [-1, 1]; got a peak of {peak:.4g}. Normalise it first, "
                         f"e.g. x / x.abs().max() (int16 PCM: x / 32768).")
    if x.shape[1] != channels:
        if mono and channels == 1:
            x = x.mean(1, keepdim=True)
        else:
            raise ValueError(
                f"{name} expects {channels}-channel audio [B, {channels}, T]; got {x.shape[1]} channels "
                f"(shape {list(x.shape)}). Pass mono=True to mix down, or use audio.mean(1, keepdim=True)."
            )
    x = x.float()
    if int(sample_rate) != model_rate:
        x = resample(x, int(sample_rate), model_rate)
    return x


# ----------------------------------------------------------------------------------------------
# ordered 1D tokens: the fewest tokens that reach a target quality
# ----------------------------------------------------------------------------------------------
def check_target_psnr(target_psnr) -> float:
    """A finite number of dB, as a float; anything else is an error."""
    if isinstance(target_psnr, bool) or not isinstance(target_psnr, (int, float)) or not math.isfinite(target_psnr):
        raise ValueError(f"target_psnr must be a finite number of dB (e.g. 25.0); got {target_psnr!r}.")
    return float(target_psnr)


def fewest_tokens(x: Tensor, ids: Tensor, target_psnr: float, decode) -> Tensor:
    """Per item, the smallest k in [1, K] whose reconstruction from ids[:k] reaches `target_psnr` dB.

    x: [B, 3, H, W] in [0, 1], the images; ids: [B, K] ordered 1D tokens (any prefix decodes).
    decode(items [b], ids [b, m], lengths [b]) -> images [b, 3, H, W] in [0, 1] for the items
    `items` of the batch, each seeing only its first lengths[i] <= m ids. A stochastic decoder
    takes its noise for each item from a fixed draw indexed by `items`, so an item's result does
    not depend on which other items are still searching.
    Bisection over k, all searching items decoded as one batch per round (ceil(log2 K) rounds):
    it assumes PSNR grows with k, which the families' nested-dropout training aims for; where it
    does not, the k found reaches the target but a smaller one may too. An item that misses the
    target even at K gets K. -> counts [B] int64 on ids' device.
    """
    b, kmax = ids.shape
    lo = torch.ones(b, dtype=torch.long, device=ids.device)
    hi = torch.full((b,), kmax, dtype=torch.long, device=ids.device)
    while bool((lo < hi).any()):
        active = (lo < hi).nonzero().squeeze(1)  # items still searching
        mid = (lo[active] + hi[active]) // 2
        recon = decode(active, ids[active, : int(mid.max())], mid)
        mse = (recon.float() - x[active].float()).pow(2).flatten(1).mean(1)  # fp32 even for a bf16 model
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
        ok = (psnr >= target_psnr).to(ids.device)
        hi[active[ok]] = mid[ok]
        lo[active[~ok]] = mid[~ok] + 1
    return lo
