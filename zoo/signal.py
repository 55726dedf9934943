"""Audio sample rates below the contract and media (api and zoo.media.audio share them): the accepted
range of rates and band-limited resampling."""

from __future__ import annotations

import numpy as np
from torch import Tensor

# Sample rates zoo accepts from a file or a caller: a header declaring 1 Hz would make resampling to
# the model's rate allocate thousands of times the file's size.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000


def check_sample_rate(sample_rate, what: str = "audio") -> int:
    """A sample rate as an int in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], else a ValueError naming `what`."""
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float))
            or not np.isfinite(sample_rate) or sample_rate != int(sample_rate)):
        raise ValueError(f"{what}: the sample rate must be a whole number of Hz; got {sample_rate!r}.")
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"{what} has a sample rate of {int(sample_rate)} Hz; zoo accepts {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz."
        )
    return int(sample_rate)


def resample(audio: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc)."""
    if orig_rate == new_rate:
        return audio
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"Sample rates must be positive; got {orig_rate} -> {new_rate}.")
    import torchaudio.functional as AF

    return AF.resample(audio, int(orig_rate), int(new_rate))
