"""Audio files and transforms: soundfile for I/O, torchaudio for resampling and mel spectrograms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.io import atomic_write
from zoo.signal import check_sample_rate, resample  # noqa: F401 (resample re-exported)


AUDIO_FORMATS = "WAV, FLAC, OGG/Vorbis, MP3, AIFF"


def load_audio(path: str | os.PathLike) -> tuple[Tensor, int]:
    """Read an audio file -> (audio [C, T] float32 in [-1, 1], sample_rate)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No audio file at {path}.")
    return decode_audio(path.read_bytes(), str(path))


def decode_audio(data: bytes, name: str) -> tuple[Tensor, int]:
    """Audio file bytes -> (audio [C, T] float32, sample_rate); errors name `name`.

    Refused: unreadable data, no samples, a sample rate outside [1 kHz, 384 kHz], and a WAV whose
    header declares more sample bytes than the file holds (truncated), which libsndfile reads in part.
    """
    import io

    import soundfile as sf

    _check_wav_complete(data, name)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            check_sample_rate(f.samplerate, name)
            arr = f.read(dtype="float32", always_2d=True)  # [T, C]
            sr, subtype = f.samplerate, f.subtype
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        reason = getattr(e, "error_string", None) or str(e)
        raise ValueError(f"Could not read {name} as audio ({reason}); accepted: {AUDIO_FORMATS}.") from e
    if arr.shape[0] == 0:
        raise ValueError(f"{name} holds no audio samples.")
    if subtype in ("FLOAT", "DOUBLE"):  # integer PCM is in [-1, 1] by construction; float files may hold anything
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} holds NaN or infinite samples; zoo reads audio in [-1, 1].")
        peak = float(np.abs(arr).max())
        if peak > 1 + 1e-3:
            raise ValueError(f"{name} holds float samples up to {peak:.4g}; zoo reads audio in [-1, 1]. "
                             f"Normalise the file first.")
    return torch.from_numpy(np.ascontiguousarray(arr.T)), int(sr)


def _check_wav_complete(data: bytes, name: str) -> None:
    """Refuse a RIFF/WAVE file whose `data` chunk declares more bytes than follow it."""
    import struct

    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    end = "<" if data[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        (size,) = struct.unpack(end + "I", data[pos + 4 : pos + 8])
        if cid == b"data":
            have = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and size > have:  # 0 / 0xFFFFFFFF: streamed, size unknown
                raise ValueError(
                    f"{name} is a truncated WAV: its header declares {size} bytes of samples but the file holds {have}."
                )
            return
        pos += 8 + size + (size & 1)
    return


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
    sample_rate = check_sample_rate(sample_rate, f"save_audio({path.name})")
    if fmt is None:
        raise ValueError(f"save_audio writes .wav, .flac or .ogg; got {path.suffix!r}.")
    return atomic_write(path, lambda tmp: sf.write(tmp, data, int(sample_rate), format=fmt, subtype=subtype))


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
