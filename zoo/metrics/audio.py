"""Audio metrics on [B, 1, T] (or [B, T]) tensors in [-1, 1].

SI-SDR and mel distance are computed here; PESQ (ITU-T P.862, `pesq` package) and STOI (`pystoi`)
wrap the reference implementations and resample to 16 kHz (wide band) or 8 kHz (narrow band).
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics.image import MetricUnavailable


def _flat(x: Tensor) -> Tensor:
    if x.dim() == 3 and x.shape[1] != 1:
        raise ValueError(f"audio metrics take mono [B, 1, T] or [B, T]; got shape {list(x.shape)}.")
    return x.reshape(x.shape[0], -1).float()


def _check(estimate: Tensor, reference: Tensor, name: str) -> None:
    if estimate.shape != reference.shape:
        raise ValueError(f"{name} needs equal shapes; got {list(estimate.shape)} and {list(reference.shape)}.")


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant signal-to-distortion ratio per item, in dB (Le Roux et al., 2019)."""
    _check(estimate, reference, "si_sdr")
    est, ref = _flat(estimate), _flat(reference)
    est = est - est.mean(1, keepdim=True)
    ref = ref - ref.mean(1, keepdim=True)
    scale = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(1) + eps) / (noise.pow(2).sum(1) + eps))


def mel_distance(estimate: Tensor, reference: Tensor, sample_rate: int, n_mels: int = 80) -> Tensor:
    """Mean absolute difference of natural-log mel spectrograms (n_fft 1024, hop 256, clip 1e-5) per item."""
    from zoo.media.audio import mel_spectrogram

    _check(estimate, reference, "mel_distance")
    if reference.shape[-1] <= 512:  # centred frames of n_fft 1024 reflect-pad 512 samples each side
        raise ValueError(f"mel_distance needs clips of more than 512 samples (n_fft 1024); got {reference.shape[-1]} "
                         f"samples ({reference.shape[-1] / sample_rate * 1000:.1f} ms at {sample_rate} Hz).")
    a = mel_spectrogram(_flat(estimate), sample_rate, n_mels=n_mels, log=True, clip=1e-5)
    b = mel_spectrogram(_flat(reference), sample_rate, n_mels=n_mels, log=True, clip=1e-5)
    return (a - b).abs().flatten(1).mean(1)


def _to_rate(x: Tensor, sample_rate: int, rate: int):
    from zoo.media.audio import resample

    return resample(_flat(x), sample_rate, rate).double().cpu().numpy()


def pesq(estimate: Tensor, reference: Tensor, sample_rate: int, mode: str = "wb") -> Tensor:
    """PESQ per item: mode "wb" (wide band, 16 kHz) or "nb" (narrow band, 8 kHz)."""
    try:
        from pesq import pesq as _pesq
    except ImportError as e:
        raise MetricUnavailable("PESQ needs `pip install pesq` (the [eval] extra).") from e
    if mode not in ("wb", "nb"):
        raise ValueError(f"pesq mode is 'wb' or 'nb'; got {mode!r}.")
    _check(estimate, reference, "pesq")
    rate = 16000 if mode == "wb" else 8000
    est, ref = _to_rate(estimate, sample_rate, rate), _to_rate(reference, sample_rate, rate)
    return torch.tensor([_pesq(rate, r, e, mode) for r, e in zip(ref, est)])


def stoi(estimate: Tensor, reference: Tensor, sample_rate: int, extended: bool = False) -> Tensor:
    """(E)STOI per item (computed at the signal's own rate; pystoi resamples to 10 kHz)."""
    try:
        from pystoi import stoi as _stoi
    except ImportError as e:
        raise MetricUnavailable("STOI needs `pip install pystoi` (the [eval] extra).") from e
    _check(estimate, reference, "stoi")
    est, ref = _flat(estimate).double().cpu().numpy(), _flat(reference).double().cpu().numpy()
    return torch.tensor([_stoi(r, e, sample_rate, extended=extended) for r, e in zip(ref, est)])
