"""Media I/O at the API's conventions.

images: `[3, H, W]` / `[B, 3, H, W]` float in [0, 1]; audio: `[C, T]` / `[B, C, T]` float in [-1, 1]
with a sample rate. Every write is atomic.
"""

from zoo.media.audio import load_audio, mel_spectrogram, resample, save_audio, to_mono
from zoo.media.image import load_image, resize_center_crop, save_image

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")
SUFFIXES = {"audio": AUDIO_SUFFIXES, "image": IMAGE_SUFFIXES, "3d": MESH_SUFFIXES}



def save_media(out_base, x, modality: str, sample_rate: int | None = None):
    """Write one decoded item at `out_base` plus the modality's suffix (.wav / .png / .ply), appended, so a
    base like `take.v1` writes `take.v1.wav` (not `take.wav`, which `take.v2` would also write)."""
    from pathlib import Path

    out_base = Path(out_base)
    if modality == "audio":
        if sample_rate is None:
            raise ValueError("save_media needs sample_rate= for audio")
        return save_audio(out_base.with_name(out_base.name + ".wav"), x.reshape(-1, x.shape[-1]), sample_rate)
    if modality == "image":
        return save_image(out_base.with_name(out_base.name + ".png"), x)
    if modality == "3d":
        from zoo.media import mesh

        return mesh.save_decoded(out_base, x)
    raise ValueError(f"save_media writes audio, image or 3d items; got modality {modality!r}")


__all__ = [
    "save_media",
    "load_audio", "save_audio", "resample", "to_mono", "mel_spectrogram",
    "load_image", "save_image", "resize_center_crop", "SUFFIXES",
]
