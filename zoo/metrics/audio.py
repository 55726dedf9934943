"""Audio metrics on [B, 1, T] (or [B, T]) tensors in [-1, 1]."""

from __future__ import annotations

import torch
from torch import Tensor


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).float()


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant signal-to-distortion ratio per item, in dB (Le Roux et al., 2019)."""
    if estimate.shape != reference.shape:
        raise ValueError(f"si_sdr needs equal shapes; got {list(estimate.shape)} and {list(reference.shape)}.")
    est, ref = _flat(estimate), _flat(reference)
    est = est - est.mean(1, keepdim=True)
    ref = ref - ref.mean(1, keepdim=True)
    scale = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(1) + eps) / (noise.pow(2).sum(1) + eps))


def mel_distance(estimate: Tensor, reference: Tensor, sample_rate: int, n_mels: int = 80) -> Tensor:
    """Mean absolute difference of log-mel spectrograms (n_fft 1024, hop 256) per item."""
    from zoo.media.audio import mel_spectrogram

    if estimate.shape != reference.shape:
        raise ValueError(f"mel_distance needs equal shapes; got {list(estimate.shape)} and {list(reference.shape)}.")
    a = mel_spectrogram(_flat(estimate), sample_rate, n_mels=n_mels, log=True, clip=1e-5)
    b = mel_spectrogram(_flat(reference), sample_rate, n_mels=n_mels, log=True, clip=1e-5)
    return (a - b).abs().flatten(1).mean(1)
