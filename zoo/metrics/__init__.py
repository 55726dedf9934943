"""Quality metrics, each usable alone. Heavy dependencies (torchmetrics, pesq, pystoi) are imported
inside the functions that need them and come with the [eval] extra."""

from zoo.metrics.audio import mel_distance, si_sdr
from zoo.metrics.image import psnr

__all__ = ["psnr", "si_sdr", "mel_distance"]
