"""Datasets to token shards and back: batched, sharded by rank, resumable, atomic.

A token shard is one safetensors file holding many items:
  ids      all items' ids flattened and concatenated, in the smallest integer type that holds the codebook
  offsets  [N + 1] int64: item i is ids[offsets[i]:offsets[i + 1]]
  shapes   [N, R] int64: each item's ids shape (without the batch axis)
and metadata: format, format_version, layout, family, variant, keys (JSON list of source keys),
metas (JSON list of each item's Tokens.meta).

Items are listed in a fixed order, cut into shards of `shard_size`, and shard i goes to rank
i % world_size, so many processes (torchrun) split a dataset without overlap. A shard that exists is
finished (it was renamed into place whole), so a re-run skips it.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor

from zoo.api import Tokens, atomic_write, atomic_write_text

SHARD_FORMAT = "zoo.token-shard"
SHARD_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Item:
    """One media item: `key` names it in outputs; `path` is its file, or the tar holding `member`."""

    key: str
    path: Path
    member: str | None = None

    def read_bytes(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        with tarfile.open(self.path) as tar:
            f = tar.extractfile(self.member)
            if f is None:
                raise ValueError(f"{self.path}:{self.member} is not a regular file")
            return f.read()

    @property
    def suffix(self) -> str:
        return Path(self.member or self.path.name).suffix.lower()


def discover(inputs: list[str | os.PathLike], suffixes: tuple[str, ...]) -> list[Item]:
    """Files, folders (recursive) and webdataset-style .tar shards -> items in a fixed order.

    Keys are paths relative to the folder given (a file given directly is keyed by its name);
    a tar member's key is `<tar name>/<member path>`.
    """
    items: list[Item] = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in suffixes:
                    items.append(Item(f.relative_to(p).as_posix(), f))
                elif f.is_file() and f.suffix == ".tar":
                    items += _tar_items(f, suffixes, prefix=f.relative_to(p).as_posix())
        elif p.is_file() and p.suffix == ".tar":
            items += _tar_items(p, suffixes, prefix=p.name)
        elif p.is_file():
            items.append(Item(p.name, p))
        else:
            raise FileNotFoundError(f"No such file or folder: {p}")
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise ValueError(f"Two inputs share the key(s) {dup}; give folders whose relative paths differ.")
    return items


def _tar_items(path: Path, suffixes, prefix: str) -> list[Item]:
    with tarfile.open(path) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile() and Path(m.name).suffix.lower() in suffixes)
    return [Item(f"{prefix}/{n}", path, n) for n in names]


# ----------------------------------------------------------------------------------------------
# reading media items (shared by encode and eval)
# ----------------------------------------------------------------------------------------------
def read_item(item: Item, modality: str, *, mono: bool = False, size=None, tokenizer=None) -> tuple[Tensor, dict]:
    """-> (tensor with a batch axis of 1, encode kwargs). 3D items need the `tokenizer` (its point count)."""
    from zoo import media

    if modality == "3d":
        return _read_mesh_item(item, tokenizer), {}
    data = io.BytesIO(item.read_bytes())
    if modality == "audio":
        import soundfile as sf

        try:
            arr, sr = sf.read(data, dtype="float32", always_2d=True)
        except Exception as e:
            raise ValueError(f"could not read as audio ({e})") from e
        if arr.shape[0] == 0:
            raise ValueError("holds no audio samples")
        x = torch.from_numpy(arr.T.copy())
        if mono and x.shape[0] > 1:
            x = media.to_mono(x)
        return x[None], {"sample_rate": int(sr)}
    if modality == "image":
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(data) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"could not read as an image ({e})") from e
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = media.resize_center_crop(x, tuple(size))
        return x[None], {}
    raise ValueError(f"pipelines read image and audio items; got modality {modality!r}")


def _read_mesh_item(item: Item, tokenizer) -> Tensor:
    """A mesh file (or tar member) -> surface points with normals [1, N, 6], as the tokenizer takes them."""
    import tempfile

    from zoo.media import mesh

    if tokenizer is None:
        raise ValueError("reading 3D items needs the tokenizer (its number of surface points)")
    try:
        if item.member is None:
            return mesh.load_points_for(tokenizer, item.path)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(item.member).name
            path.write_bytes(item.read_bytes())
            return mesh.load_points_for(tokenizer, path)
    except (ValueError, OSError) as e:
        raise ValueError(f"could not read as a mesh ({e})") from e


class _ItemDataset(torch.utils.data.Dataset):
    def __init__(self, items, modality, mono, size, tokenizer=None):
        self.items, self.modality, self.mono, self.size = items, modality, mono, size
        self.tokenizer = tokenizer if modality == "3d" else None

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        try:
            x, kw = read_item(item, self.modality, mono=self.mono, size=self.size, tokenizer=self.tokenizer)
            return i, x, kw, None
        except (ValueError, OSError, tarfile.TarError) as e:
            return i, None, None, f"{item.key}: {e}"


def iter_media(items: list[Item], modality: str, *, num_workers: int = 0, mono: bool = False, size=None, tokenizer=None):
    """Yield (index, tensor [1, ...] or None, kwargs, error) in order; reading runs in `num_workers` processes."""
    ds = _ItemDataset(items, modality, mono, size, tokenizer)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=num_workers, shuffle=False)
    yield from loader


def batched(stream, batch_size: int):
    """Group consecutive readable items of equal shape and kwargs into batches; errors pass through alone."""
    batch = []
    for rec in stream:
        i, x, kw, err = rec
        if err is not None:
            yield [rec]
            continue
        if batch and (len(batch) == batch_size or batch[0][1].shape[1:] != x.shape[1:] or batch[0][2] != kw):
            yield batch
            batch = []
        batch.append(rec)
    if batch:
        yield batch


# ----------------------------------------------------------------------------------------------
# shards
# ----------------------------------------------------------------------------------------------
def smallest_int_dtype(codebook_size: int) -> torch.dtype:
    if codebook_size <= 2**8:
        return torch.uint8
    if codebook_size <= 2**15:
        return torch.int16
    if codebook_size <= 2**16:
        return torch.uint16
    if codebook_size <= 2**31:
        return torch.int32
    return torch.int64


def write_shard(path: str | os.PathLike, keys: list[str], tokens: list[Tokens], codebook_size: int) -> Path:
    """Write items (each a Tokens of batch 1) as one shard, atomically."""
    from safetensors.torch import save_file

    if not tokens:
        raise ValueError("a shard needs at least one item")
    layout = tokens[0].layout
    dtype = smallest_int_dtype(codebook_size)
    flat, shapes, lengths = [], [], []
    for t in tokens:
        if t.layout != layout:
            raise ValueError(f"one shard holds one layout; got {layout!r} and {t.layout!r}")
        ids = t.unpadded()[0]
        flat.append(ids.reshape(-1).cpu())  # tokens come back on the model's device
        shapes.append(list(ids.shape))
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ValueError("items of one shard must have ids of the same rank")
    sizes = torch.tensor([f.numel() for f in flat])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    tensors = {
        "ids": torch.cat(flat).to(dtype).contiguous(),
        "offsets": offsets,
        "shapes": torch.tensor(shapes, dtype=torch.long),
    }
    metas = [t.meta for t in tokens]
    metadata = {
        "format": SHARD_FORMAT,
        "format_version": str(SHARD_FORMAT_VERSION),
        "layout": layout,
        "family": str(metas[0].get("family", "")),
        "variant": str(metas[0].get("variant", "")),
        "keys": json.dumps(keys),
        "metas": json.dumps(metas),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_shard(path: str | os.PathLike) -> list[tuple[str, Tokens]]:
    """A shard -> [(key, Tokens with a batch of 1)], ids back to int64."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            ids, offsets, shapes = f.get_tensor("ids"), f.get_tensor("offsets"), f.get_tensor("shapes")
    except Exception as e:
        raise ValueError(f"{path} is not a readable token shard ({e}).") from e
    if md.get("format") != SHARD_FORMAT:
        raise ValueError(f"{path} is not a zoo token shard (format={md.get('format')!r}).")
    if int(md.get("format_version", 0)) > SHARD_FORMAT_VERSION:
        raise ValueError(f"{path} has shard format {md['format_version']}; this zoo reads up to {SHARD_FORMAT_VERSION}.")
    keys, metas = json.loads(md["keys"]), json.loads(md["metas"])
    out = []
    for i, key in enumerate(keys):
        item = ids[offsets[i] : offsets[i + 1]].long().reshape(shapes[i].tolist())
        out.append((key, Tokens(item[None], layout=md["layout"], meta=metas[i])))
    return out


def shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"shard-{index:06d}.safetensors"


def shard_plan(num_items: int, shard_size: int, rank: int, world_size: int) -> list[tuple[int, range]]:
    """Shards of this rank: [(shard index, item index range)]; shard i belongs to rank i % world_size."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1; got {shard_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    n_shards = (num_items + shard_size - 1) // shard_size
    return [(s, range(s * shard_size, min(num_items, (s + 1) * shard_size))) for s in range(rank, n_shards, world_size)]


@dataclass
class EncodeSummary:
    shards_written: int
    shards_skipped: int
    items_encoded: int
    failures: list[str]


def encode_dataset(
    tokenizer,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    shard_size: int = 1000,
    batch_size: int = 8,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    strict: bool = False,
    mono: bool = False,
    encode_kwargs: dict | None = None,
    progress: bool = True,
) -> EncodeSummary:
    """Encode files/folders/tar shards into token shards under `out_dir` (this rank's share).

    Unreadable items are listed in `out_dir/failures-rank<r>.jsonl` and skipped, unless `strict`.
    A finished shard is never rewritten, so a re-run after a crash resumes where it stopped.
    """
    from tqdm import tqdm

    from zoo.media import SUFFIXES

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = discover(list(inputs), SUFFIXES[tokenizer.modality])
    plan = shard_plan(len(items), shard_size, rank, world_size)
    todo = [(s, r) for s, r in plan if not shard_path(out_dir, s).is_file()]
    size = getattr(tokenizer, "input_size", None)
    failures: list[str] = []
    encoded = 0
    bar = tqdm(total=sum(len(r) for _, r in todo), unit="item", disable=not progress or rank != 0)
    for s, r in todo:
        mine = [items[i] for i in r]
        keys, toks = [], []
        stream = iter_media(mine, tokenizer.modality, num_workers=num_workers, mono=mono, size=size, tokenizer=tokenizer)
        for batch in batched(stream, batch_size):
            if batch[0][3] is not None:
                if strict:
                    raise ValueError(batch[0][3])
                failures.append(batch[0][3])
                bar.update(1)
                continue
            x = torch.cat([b[1] for b in batch])
            try:
                t = tokenizer.encode(x, **batch[0][2], **(encode_kwargs or {}))
            except ValueError as e:
                if strict:
                    raise
                failures += [f"{mine[b[0]].key}: {e}" for b in batch]
                bar.update(len(batch))
                continue
            for j, b in enumerate(batch):
                item = t[j]
                item.meta["source"] = mine[b[0]].key
                keys.append(mine[b[0]].key)
                toks.append(item)
            encoded += len(batch)
            bar.update(len(batch))
        if toks:
            write_shard(shard_path(out_dir, s), keys, toks, tokenizer.codebook_size)
    bar.close()
    if failures:
        atomic_write_text(out_dir / f"failures-rank{rank}.jsonl", "".join(json.dumps({"item": f}) + "\n" for f in failures))
    return EncodeSummary(len([1 for s, _ in todo]), len(plan) - len(todo), encoded, failures)


def iter_tokens(paths: list[str | os.PathLike]) -> Iterator[tuple[str, Tokens]]:
    """(key, Tokens) over .tokens files, shard files and folders of either, in order."""
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.suffix in (".tokens", ".safetensors")) if p.is_dir() else [p]
        for f in files:
            if f.suffix == ".tokens":
                yield (f.relative_to(p).with_suffix("").as_posix() if p.is_dir() else f.stem), Tokens.load(f)
            else:
                yield from read_shard(f)


def decode_dataset(
    tokenizer,
    paths: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    write: Callable | None = None,
    decode_kwargs: dict | None = None,
    progress: bool = True,
) -> int:
    """Decode every item of shards / .tokens files back to media files under `out_dir` (keys as paths)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    n = 0
    with torch.inference_mode():
        for key, tokens in tqdm(list(iter_tokens(paths)), unit="item", disable=not progress):
            recon = tokenizer.decode(tokens, **(decode_kwargs or {}))
            write(out_dir / Path(key).with_suffix(""), recon[0], tokens)
            n += 1
    return n
