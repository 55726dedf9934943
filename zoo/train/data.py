"""Training data: image folders, audio folders and webdataset-style tar shards, sharded by rank and
resumable to the exact batch.

Every dataset is map-style and takes `(index, seed)` pairs from `ResumableBatchSampler`: the sampler
shuffles per epoch with a seed of its own, gives each rank every world_size-th index, and starts at
any batch. Random crops and segments draw from a generator seeded by the pair, so a sample is the
same whatever the number of loader workers, and a resumed run sees exactly the batches the
uninterrupted one would have seen. The data position in a checkpoint is just the number of batches a
rank has consumed.

Tar shards follow the webdataset layout (files grouped into samples by the name before the first
dot: `000123.jpg`, `000123.json`); they are indexed once (member offsets) and read by seeking, so
they shuffle and resume like folders. Unreadable files raise an error naming the file
(`on_error: stop`) or are logged and replaced by the next readable sample (`on_error: skip`).

Audio may carry its transcript (`text: sidecar | filename`, for training terms that read text, such
as XY-Tokenizer's ASR alignment): a sample is then `(wav, text)` and a batch `[wav [B, C, T], [str] * B]`.
`sidecar` reads `<stem>.txt` beside each audio file (in tar shards: the `.txt` member with the same
key); `filename` takes the file's stem (its key in tar shards) as the text, for corpora named by what
is spoken (klettres' en, en_GB, es, it, pt_BR, tn folders: `car.ogg`; not fr or nl: `a-0.ogg`).
Audio without its transcript is an error (`on_error: stop`) or left out when indexed (`skip`).
"""

from __future__ import annotations

import io
import logging
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")
MESH_EXTS = (".obj", ".ply", ".stl", ".off", ".glb")
KINDS = ("image_folder", "audio_folder", "tar_shards", "mesh_folder")
TEXT_SOURCES = ("none", "sidecar", "filename")

log = logging.getLogger("zoo.train.data")


@dataclass(frozen=True)
class DataConfig:
    kind: str = "image_folder"  # image_folder | audio_folder | tar_shards | mesh_folder
    paths: tuple[str, ...] = ()  # folders (searched recursively) or tar files / folders of .tar
    modality: str = "image"  # what tar shards hold: image | audio (folders imply it)
    batch_size: int = 8  # per process, per micro-step
    num_workers: int = 0
    on_error: str = "stop"  # stop: raise naming the file; skip: log it and take the next sample
    repeat: int = 1  # each file counts this many times per epoch (few long files, random windows)
    # images
    size: int = 256  # square crop side
    resize: str = "short_side"  # none | short_side (short side -> resize_to, then crop)
    resize_to: int | None = None  # default: size
    crop: str = "random"  # random | center
    flip: bool = False  # random horizontal flip
    # audio
    sample_rate: int = 24000
    segment_seconds: float = 1.0  # random segment length; shorter clips are zero-padded
    mono: bool = True  # mix channels down (else the file's channels are kept)
    text: str = "none"  # transcripts: none | sidecar (<stem>.txt; .txt tar member) | filename (the stem is the text)
    # meshes (3D): each sample is {"x": surface points + normals, "queries", "occupancy"}
    num_points: int = 2048  # surface points with normals per shape
    num_queries: int = 2048  # occupancy query points per shape
    near_surface: float = 0.5  # fraction of queries near the surface (the rest uniform in [-1, 1]^3)
    near_sigma: float = 0.03  # std of the Gaussian offset of near-surface queries
    normalize_bound: float = 0.9  # shapes are normalised into [-bound, bound]^3 (after augmentation)
    rotate: bool = False  # random 3D rotation per sample
    scale_range: tuple[float, float] = (1.0, 1.0)  # random per-axis scale before re-normalising


# ----------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------
def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + index * 104_729) % (2**63 - 1)


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of `(index, seed)` for one rank: shuffled per epoch, every world_size-th
    index of the permutation, incomplete tail batches dropped. `start_batch` resumes mid-run."""

    def __init__(self, num_samples: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, start_batch: int = 0):
        if num_samples <= 0:
            raise ValueError("The dataset is empty: no samples to train on.")
        per_rank = num_samples // world_size
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{num_samples} samples give no full batch of {batch_size} on each of {world_size} processes; "
                "lower batch_size or add data."
            )
        self.n, self.bs, self.rank, self.world, self.seed, self.shuffle = num_samples, batch_size, rank, world_size, seed, shuffle
        self.start_batch = start_batch

    def epoch_indices(self, epoch: int) -> Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        return perm[self.rank : self.world * (self.n // self.world) : self.world]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.start_batch
        while True:
            epoch, k = divmod(b, self.batches_per_epoch)
            idx = self.epoch_indices(epoch)[k * self.bs : (k + 1) * self.bs].tolist()
            yield [(i, sample_seed(self.seed, epoch, i)) for i in idx]
            b += 1

    def __len__(self) -> int:  # one epoch; iteration itself is endless
        return self.batches_per_epoch


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
def crop_image(img: Tensor, cfg: DataConfig, g: torch.Generator, source: str) -> Tensor:
    """[3, H, W] -> [3, size, size] by the recipe's resize and crop policy."""
    size = cfg.size
    if cfg.resize == "short_side":
        target = cfg.resize_to or size
        h, w = img.shape[-2:]
        s = target / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        if (nh, nw) != (h, w):
            img = F.interpolate(img[None], size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)
    elif cfg.resize != "none":
        raise ValueError(f"data.resize must be 'none' or 'short_side'; got {cfg.resize!r}.")
    h, w = img.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{source} is {h}x{w}, smaller than the {size}x{size} crop; use resize: short_side.")
    if cfg.crop == "random":
        top = int(torch.randint(0, h - size + 1, (1,), generator=g))
        left = int(torch.randint(0, w - size + 1, (1,), generator=g))
    elif cfg.crop == "center":
        top, left = (h - size) // 2, (w - size) // 2
    else:
        raise ValueError(f"data.crop must be 'random' or 'center'; got {cfg.crop!r}.")
    img = img[:, top : top + size, left : left + size]
    if cfg.flip and bool(torch.rand((), generator=g) < 0.5):
        img = img.flip(-1)
    return img.contiguous()


def segment_audio(wav: Tensor, sr: int, cfg: DataConfig, g: torch.Generator) -> Tensor:
    """[C, T] at `sr` -> [C', segment] at cfg.sample_rate (mono when asked), a random window."""
    from zoo.media.audio import resample

    if cfg.mono:
        wav = wav.mean(0, keepdim=True)
    seg = round(cfg.segment_seconds * cfg.sample_rate)
    if sr != cfg.sample_rate:
        wav = resample(wav, sr, cfg.sample_rate)
    t = wav.shape[-1]
    if t >= seg:
        start = int(torch.randint(0, t - seg + 1, (1,), generator=g))
        wav = wav[:, start : start + seg]
    else:
        wav = F.pad(wav, (0, seg - t))
    return wav.contiguous()


# ----------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------
class _Base(Dataset):
    modality = "image"

    def __init__(self, cfg: DataConfig):
        if cfg.repeat < 1:
            raise ValueError(f"data.repeat must be at least 1; got {cfg.repeat}.")
        if cfg.on_error not in ("stop", "skip"):
            raise ValueError(f"data.on_error must be 'stop' or 'skip'; got {cfg.on_error!r}.")
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.items) * self.cfg.repeat

    def load(self, i: int, g: torch.Generator) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def name(self, i: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key: tuple[int, int]) -> Tensor:
        index, seed = key
        for attempt in range(min(len(self), 50)):
            i = (index + attempt) % len(self) % len(self.items)
            g = torch.Generator().manual_seed(seed)
            try:
                return self.load(i, g)
            except Exception as e:
                msg = f"Could not read training sample {self.name(i)}: {type(e).__name__}: {e}"
                if self.cfg.on_error == "stop":
                    raise ValueError(msg + " (set data.on_error: skip to skip unreadable files).") from e
                log.warning("%s; skipping it.", msg)
        raise ValueError(f"50 samples in a row from index {index} could not be read; check the data ({self.cfg.paths}).")


def _keep_transcribed(names: list[str], has_text: list[bool], cfg: DataConfig) -> list[bool]:
    """data.text: sidecar: raise (on_error: stop) or warn (skip) about audio without a transcript;
    returns which items to keep."""
    missing = [n for n, ok in zip(names, has_text) if not ok]
    if missing:
        msg = (f"data.text is sidecar, but {len(missing)} of {len(names)} audio files have no transcript, "
               f"e.g. {missing[:3]} (expected <stem>.txt beside each file, or a .txt member with the same key in a tar shard)")
        if cfg.on_error == "stop":
            raise ValueError(msg + "; add them, use text: filename, or set data.on_error: skip to leave those files out.")
        log.warning("%s; leaving them out.", msg)
    return has_text


def _files(paths: Sequence[str], exts: Sequence[str]) -> list[Path]:
    if not paths:
        raise ValueError("data.paths is empty: name at least one folder or file.")
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in exts and f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"data path {p} does not exist.")
    if not out:
        raise ValueError(f"No files with extensions {list(exts)} under {list(paths)}.")
    return out


class ImageFolder(_Base):
    """Images under folders (recursive) -> [3, size, size] crops in [0, 1]."""

    def __init__(self, cfg: DataConfig):
        super().__init__(cfg)
        self.items = _files(cfg.paths, IMAGE_EXTS)

    def name(self, i):
        return str(self.items[i])

    def load(self, i, g):
        from zoo.media.image import load_image

        return crop_image(load_image(self.items[i]), self.cfg, g, str(self.items[i]))


class AudioFolder(_Base):
    """Audio files under folders (recursive) -> [C, segment] at the recipe's rate (and its
    transcript, with data.text)."""

    modality = "audio"

    def __init__(self, cfg: DataConfig):
        super().__init__(cfg)
        files = _files(cfg.paths, AUDIO_EXTS)
        if cfg.text == "sidecar":
            keep = _keep_transcribed([str(f) for f in files], [f.with_suffix(".txt").is_file() for f in files], cfg)
            files = [f for f, k in zip(files, keep) if k]
            if not files:
                raise ValueError(f"No audio file under {list(cfg.paths)} has a transcript (<stem>.txt).")
        self.items = files

    def name(self, i):
        return str(self.items[i])

    def load(self, i, g):
        from zoo.media.audio import load_audio

        wav, sr = load_audio(self.items[i])
        wav = segment_audio(wav, sr, self.cfg, g)
        if self.cfg.text == "none":
            return wav
        path = self.items[i]
        return wav, path.with_suffix(".txt").read_text(encoding="utf-8").strip() if self.cfg.text == "sidecar" else path.stem


def _sample_key(member: str) -> str:
    """webdataset key: the member's path up to the first dot of its file name (`d/000123.flac` -> `d/000123`)."""
    folder, base = posixpath.split(member)
    return posixpath.join(folder, base.split(".", 1)[0])


def _read_member(shard: Path, offset: int, size: int) -> bytes:
    with open(shard, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ValueError(f"the shard ends before the member does ({len(data)} of {size} bytes)")
    return data


class TarShards(_Base):
    """webdataset-style .tar shards: one media file per sample key, read by offset (with
    data.text: sidecar, the `.txt` member of the same key is the transcript)."""

    def __init__(self, cfg: DataConfig):
        super().__init__(cfg)
        if cfg.modality not in ("image", "audio"):
            raise ValueError(f"data.modality must be 'image' or 'audio' for tar shards; got {cfg.modality!r}.")
        self.modality = cfg.modality
        exts = IMAGE_EXTS if cfg.modality == "image" else AUDIO_EXTS
        # (shard, member name, offset, size, transcript member (offset, size) or None)
        self.items: list[tuple[Path, str, int, int, tuple[int, int] | None]] = []
        for shard in _files(cfg.paths, (".tar",)):
            try:
                with tarfile.open(shard) as tf:
                    members = [m for m in tf.getmembers() if m.isfile()]
            except (tarfile.TarError, OSError) as e:
                msg = f"Could not index tar shard {shard}: {e}"
                if cfg.on_error == "stop":
                    raise ValueError(msg + " (set data.on_error: skip to skip unreadable files).") from e
                log.warning("%s; skipping the shard.", msg)
                continue
            texts = {_sample_key(m.name): (m.offset_data, m.size) for m in members if m.name.lower().endswith(".txt")}
            self.items += [(shard, m.name, m.offset_data, m.size, texts.get(_sample_key(m.name)))
                           for m in members if Path(m.name).suffix.lower() in exts]
        if cfg.text == "sidecar":
            keep = _keep_transcribed([self.name(i) for i in range(len(self.items))], [it[4] is not None for it in self.items], cfg)
            self.items = [it for it, k in zip(self.items, keep) if k]
        if not self.items:
            raise ValueError(f"No {cfg.modality} members{' with transcripts' if cfg.text == 'sidecar' else ''} "
                             f"in the tar shards under {list(cfg.paths)}.")

    def name(self, i):
        shard, member, *_ = self.items[i]
        return f"{shard}:{member}"

    def load(self, i, g):
        shard, member, offset, size, text = self.items[i]
        data = _read_member(shard, offset, size)
        if self.modality == "image":
            import numpy as np
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            img = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
            return crop_image(img, self.cfg, g, self.name(i))
        import numpy as np
        import soundfile as sf

        arr, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        wav = segment_audio(torch.from_numpy(np.ascontiguousarray(arr.T)), sr, self.cfg, g)
        if self.cfg.text == "none":
            return wav
        if self.cfg.text == "sidecar":
            return wav, _read_member(shard, *text).decode("utf-8").strip()
        return wav, posixpath.basename(_sample_key(member))


class MeshFolder(_Base):
    """Watertight meshes under folders -> {"x": [N, 6] surface points + normals, "queries": [Q, 3],
    "occupancy": [Q] in {0, 1}} per sample, in the unit cube, optionally rotated and scaled.

    Meshes are read once; one that is not watertight is an error (on_error: stop) or left out
    (skip), since its occupancy labels would be wrong. Labels: generalised winding number (libigl)."""

    modality = "3d"

    def __init__(self, cfg: DataConfig):
        super().__init__(cfg)
        from zoo.media import mesh as M

        if not 0.0 <= cfg.near_surface <= 1.0:
            raise ValueError(f"data.near_surface must lie in [0, 1]; got {cfg.near_surface}.")
        lo, hi = cfg.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"data.scale_range must be (low, high) with 0 < low <= high; got {cfg.scale_range}.")
        self.items, self.meshes = [], []
        for path in _files(cfg.paths, MESH_EXTS):
            try:
                mesh = M.load_mesh(path)
                M.check_watertight(mesh, str(path))
            except ValueError as e:
                if cfg.on_error == "stop":
                    raise ValueError(f"{e} (set data.on_error: skip to leave such meshes out).") from e
                log.warning("%s; leaving it out.", e)
                continue
            self.items.append(path)
            self.meshes.append(M.normalize_mesh(mesh, cfg.normalize_bound))
        if not self.items:
            raise ValueError(f"No usable (watertight) meshes under {list(cfg.paths)}.")

    def name(self, i):
        return str(self.items[i])

    def load(self, i, g):
        import numpy as np

        from zoo.media import mesh as M

        cfg = self.cfg
        mesh = self.meshes[i]
        if cfg.rotate or cfg.scale_range != (1.0, 1.0):
            transform = np.eye(4)
            if cfg.rotate:  # uniform random rotation: QR of a Gaussian matrix, signs fixed
                q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
                q = q * torch.sign(torch.diagonal(r))[None]
                if torch.det(q) < 0:
                    q[:, 0] = -q[:, 0]
                transform[:3, :3] = q.numpy()
            lo, hi = cfg.scale_range
            scale = lo + (hi - lo) * torch.rand(3, generator=g, dtype=torch.float64)
            transform[:3, :3] = np.diag(scale.numpy()) @ transform[:3, :3]
            mesh = mesh.copy()
            mesh.apply_transform(transform)
            mesh = M.normalize_mesh(mesh, cfg.normalize_bound)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        surface = M.sample_surface(mesh, cfg.num_points + cfg.num_queries, seed=seed)  # [N + Q, 6]
        points = surface[: cfg.num_points]
        n_near = round(cfg.num_queries * cfg.near_surface)
        near = surface[cfg.num_points : cfg.num_points + n_near, :3]
        near = near + cfg.near_sigma * torch.randn(near.shape, generator=g)
        uniform = torch.rand(cfg.num_queries - n_near, 3, generator=g) * 2 - 1
        queries = torch.cat([near, uniform]).clamp(-1, 1)  # [Q, 3]
        occ = M.occupancy(mesh, queries, require_watertight=False).float()  # checked when read
        return {"x": points, "queries": queries, "occupancy": occ}


def build_dataset(cfg: DataConfig) -> Dataset:
    if cfg.text not in TEXT_SOURCES:
        raise ValueError(f"data.text must be one of {TEXT_SOURCES}; got {cfg.text!r}.")
    if cfg.text != "none" and not (cfg.kind == "audio_folder" or cfg.kind == "tar_shards" and cfg.modality == "audio"):
        raise ValueError(f"data.text: {cfg.text} gives transcripts for audio only (audio_folder, or tar_shards with "
                         f"modality: audio); this recipe reads {cfg.kind} ({cfg.modality}).")
    if cfg.kind == "image_folder":
        return ImageFolder(cfg)
    if cfg.kind == "audio_folder":
        return AudioFolder(cfg)
    if cfg.kind == "tar_shards":
        return TarShards(cfg)
    if cfg.kind == "mesh_folder":
        return MeshFolder(cfg)
    raise ValueError(f"data.kind must be one of {KINDS}; got {cfg.kind!r}.")


def build_loader(dataset: Dataset, cfg: DataConfig, *, rank: int, world_size: int, seed: int,
                 start_batch: int = 0) -> Iterator[Tensor]:
    """An endless iterator of batches for this rank, starting at batch `start_batch`."""
    sampler = ResumableBatchSampler(len(dataset), cfg.batch_size, rank=rank, world_size=world_size, seed=seed,
                                    start_batch=start_batch)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                        persistent_workers=cfg.num_workers > 0, pin_memory=torch.cuda.is_available(),
                        # a private generator: creating the iterator must not draw from the global
                        # RNG, or a resumed run's random stream would shift
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)
