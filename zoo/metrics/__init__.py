"""Quality metrics, each usable alone. Heavy dependencies (torchmetrics, pesq, pystoi, scipy,
torch-fidelity) are imported inside the functions that need them and come with the [eval] extra.
A metric whose package or network is missing raises `MetricUnavailable`."""

from zoo.metrics.audio import mel_distance, pesq, si_sdr, stoi
from zoo.metrics.image import MetricUnavailable, ms_ssim, psnr, rfid, ssim, st_lpips
from zoo.metrics.shape import chamfer_distance, f_score, volume_iou

__all__ = [
    "MetricUnavailable", "psnr", "ssim", "ms_ssim", "st_lpips", "rfid",
    "si_sdr", "mel_distance", "pesq", "stoi", "chamfer_distance", "f_score", "volume_iou",
]
