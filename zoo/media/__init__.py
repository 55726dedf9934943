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

__all__ = [
    "load_audio", "save_audio", "resample", "to_mono", "mel_spectrogram",
    "load_image", "save_image", "resize_center_crop", "SUFFIXES",
]
