"""Small builders shared by the reliability tests: a toy model folder, tiny media files, token files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch

AUDIO_MODEL = "wavtokenizer-tiny-24k"  # the embedded tiny audio model (loads in well under a second)


def toy_folder(root: Path, seed: int = 0, **cfg) -> Path:
    """A toy image tokenizer (tests/toy_family.py) saved as a zoo folder; needs the toy_registry fixture."""
    from toy_family import ToyConfig, ToyTokenizer

    torch.manual_seed(seed)
    m = ToyTokenizer(ToyConfig(**cfg))
    m.variant = "toy-embedded"
    folder = root / f"toy-model-{seed}"
    m.save_pretrained(folder)
    return folder


def png(path: Path, h: int = 16, w: int = 16, seed: int = 0) -> Path:
    from zoo import media

    g = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    media.save_image(path, torch.rand(3, h, w, generator=g))
    return path


def png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG of a few dozen bytes that declares w x h pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def wav(path: Path, seconds: float = 0.1, sr: int = 24000, peak: float = 0.3, subtype: str = "FLOAT", seed: int = 0,
        n: int | None = None) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(seconds * sr) if n is None else n
    x = rng.uniform(-1, 1, n).astype(np.float32)
    x = x / np.abs(x).max() * peak
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".wav": "WAV", ".flac": "FLAC"}[path.suffix]
    sf.write(str(path), x, sr, format=fmt, subtype=subtype if fmt == "WAV" else None)
    return path


def wav_with_rate(path: Path, declared_sr: int, n: int = 600) -> Path:
    """A small valid 16-bit PCM WAV whose header declares `declared_sr` Hz."""
    data = (np.zeros(n, dtype=np.int16)).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, declared_sr, declared_sr * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tokens_file(path: Path, tensors: dict, metadata: dict) -> Path:
    """A safetensors file with exactly these tensors and header metadata (for damaged token files)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
