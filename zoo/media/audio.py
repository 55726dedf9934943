"""Audio files and transforms: soundfile for I/O, torchaudio for resampling and mel spectrograms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.api import atomic_write


def load_audio(path: str | os.PathLike) -> tuple[Tensor, int]:
    """Read an audio file -> (audio [C, T] float32 in [-1, 1], sample_rate)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No audio file at {path}.")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except Exception as e:
        raise ValueError(f"Could not read {path} as audio ({e}); accepted: WAV, FLAC, OGG/Vorbis, MP3, AIFF.") from e
    if data.shape[0] == 0:
        raise ValueError(f"{path} holds no audio samples.")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def save_audio(path: str | os.PathLike, audio: Tensor, sample_rate: int, subtype: str | None = None) -> Path:
    """Write audio [C, T] (or [T]) in [-1, 1]; the format follows the suffix (.wav, .flac, .ogg)."""
    import soundfile as sf

    path = Path(path)
    a = audio.detach().float().cpu()
    if a.dim() == 1:
        a = a[None]
    if a.dim() != 2:
        raise ValueError(f"save_audio takes [C, T] or [T]; got shape {list(audio.shape)}.")
    data = a.clamp(-1, 1).numpy().T
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"save_audio writes .wav, .flac or .ogg; got {path.suffix!r}.")
    return atomic_write(path, lambda tmp: sf.write(tmp, data, int(sample_rate), format=fmt, subtype=subtype))


def resample(audio: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc)."""
    if orig_rate == new_rate:
        return audio
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"Sample rates must be positive; got {orig_rate} -> {new_rate}.")
    import torchaudio.functional as AF

    return AF.resample(audio, int(orig_rate), int(new_rate))


def to_mono(audio: Tensor) -> Tensor:
    """[..., C, T] -> [..., 1, T] by averaging channels."""
    return audio.mean(-2, keepdim=True)


def mel_spectrogram(
    audio: Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 100,
    win_length: int | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
    power: float = 1.0,
    center: bool = True,
    norm: str | None = None,
    mel_scale: str = "htk",
    log: bool = True,
    clip: float = 1e-7,
) -> Tensor:
    """audio [..., T] -> (log) mel spectrogram [..., n_mels, frames], via torchaudio."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=win_length, n_mels=n_mels,
        f_min=f_min, f_max=f_max, power=power, center=center, norm=norm, mel_scale=mel_scale,
    ).to(audio.device)
    m = mel(audio.float())
    return torch.log(m.clamp(min=clip)) if log else m
