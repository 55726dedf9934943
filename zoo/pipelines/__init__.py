"""Datasets to token shards and back: batched, sharded by rank, resumable, atomic.

A token shard is one safetensors file holding many items:
  ids      all items' ids flattened and concatenated, in the smallest integer type that holds the codebook
  offsets  [N + 1] int64: item i is ids[offsets[i]:offsets[i + 1]]
  shapes   [N, R] int64: each item's ids shape (without the batch axis)
and metadata: format, format_version, layout, family, variant, keys (JSON list of source keys),
metas (JSON list of each item's Tokens.meta).

Items are listed in a fixed order, cut into shards of `shard_size`, and shard i goes to rank
i % world_size, so many processes (torchrun) split a dataset without overlap. A shard is renamed into
place whole; a re-run keeps a shard that holds all its items (their files unchanged) and redoes the
others, after checking `manifest.json` (model, options, item list) and taking a per-rank lock.
Every output path is checked to lie inside the output folder (`output_path`).
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from zoo.api import Tokens
from zoo.io import atomic_write, atomic_write_text

SHARD_FORMAT = "zoo.token-shard"
SHARD_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Item:
    """One media item: `key` names it in outputs; `path` is its file, or the tar holding `member`."""

    key: str
    path: Path
    member: str | None = None
    error: str | None = None  # why this item cannot be read (found while listing, e.g. a corrupt .tar)

    def read_bytes(self) -> bytes:
        if self.error is not None:
            raise ValueError(self.error)
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
    """A tar's media members as items; an unreadable tar is one item that fails with the reason, and a
    member whose name is absolute or climbs out with `..` fails too (its key could not be an output path)."""
    try:
        with tarfile.open(path) as tar:
            names = sorted(m.name for m in tar.getmembers() if m.isfile() and Path(m.name).suffix.lower() in suffixes)
    except (tarfile.TarError, OSError, EOFError) as e:
        return [Item(prefix, path, error=f"is not a readable .tar archive ({e}); accepted: uncompressed, gzip, "
                                         f"bzip2 or xz tar files")]
    items = []
    for n in names:
        bad = _unsafe_key(n)
        err = f"the tar member name {n!r} {bad}; refused (it would be written outside --out)" if bad else None
        items.append(Item(f"{prefix}/{n}", path, n, error=err))
    return items


# ----------------------------------------------------------------------------------------------
# output paths: nothing is written outside the output folder, no input is overwritten
# ----------------------------------------------------------------------------------------------
def _unsafe_key(key: str) -> str | None:
    """Why `key` cannot name a file under an output folder, or None."""
    from pathlib import PurePosixPath, PureWindowsPath

    if not isinstance(key, str) or not key.strip():
        return "is empty"
    if "\x00" in key:
        return "holds a NUL character"
    if PurePosixPath(key).is_absolute() or PureWindowsPath(key).anchor:
        return "is an absolute path"
    parts = key.replace("\\", "/").split("/")
    if ".." in parts:
        return "holds '..'"
    if all(p in ("", ".") for p in parts):
        return "names no file"
    return None


def _stem_of(key: str) -> str:
    """A key without its media suffix (`sub/a.wav` -> `sub/a`); other dots stay (`take.v1` is kept whole)."""
    from zoo.media import SUFFIXES

    rel = Path(key)
    media_suffixes = {x for v in SUFFIXES.values() for x in v}
    return (rel.with_suffix("") if rel.suffix.lower() in media_suffixes else rel).as_posix()


def output_path(out_dir: str | os.PathLike, key: str) -> Path:
    """The output base (no suffix) for item `key` under `out_dir`: `out_dir/<key without its media suffix>`.

    Refuses (ValueError) keys that are absolute, hold `..`, or resolve outside `out_dir` (through a
    symbolic link), so that no tar member, shard key or token file writes outside the output folder.
    """
    out_dir = Path(out_dir)
    bad = _unsafe_key(key)
    if bad:
        raise ValueError(f"The item key {key!r} {bad}; refused: keys must be relative paths inside the output folder.")
    base = out_dir / _stem_of(key)
    root = out_dir.resolve()
    if not base.resolve().is_relative_to(root):
        raise ValueError(f"The item key {key!r} resolves to {base.resolve()}, outside the output folder {root}; refused.")
    return base


def prepare_out_dir(out_dir: str | os.PathLike, inputs=(), *, what: str = "--out") -> Path:
    """Check and create an output folder: not a file, writable, and neither an input folder nor inside one
    (outputs would overwrite the originals or be read back as inputs on the next run), holding no input file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{what} {out_dir} is a file; give a folder (it is created if missing).")
    root = out_dir.resolve()
    for inp in inputs:
        p = Path(inp).resolve()
        if Path(inp).is_dir() and (root == p or root.is_relative_to(p)):
            raise ValueError(f"{what} {out_dir} is the input folder {inp} or inside it: outputs would overwrite or be "
                             f"read back as inputs. Choose an output folder outside {inp}.")
        if p.is_relative_to(root):
            raise ValueError(f"The input {inp} lies inside {what} {out_dir}: its output could overwrite it. "
                             f"Choose an output folder that holds no input.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{what} {out_dir} cannot be created: a part of that path is a file.") from None
    except OSError as e:
        raise ValueError(f"{what} {out_dir} cannot be created ({e.strerror or e}); give a folder you can write to.") from e
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {out_dir} is not writable; give a folder you can write to.")
    return out_dir


def output_collisions(keys: list[str]) -> list[str]:
    """Keys that map to the same output base (`a.wav` and `a.flac` both write `a.wav`): one line per clash."""
    seen: dict[str, str] = {}
    clashes = []
    for k in keys:
        if _unsafe_key(k):
            continue
        base = _stem_of(k)
        if base in seen:
            clashes.append(f"{seen[base]} and {k} would both write {base}.*")
        else:
            seen[base] = k
    return clashes


# ----------------------------------------------------------------------------------------------
# reading media items (shared by encode and eval)
# ----------------------------------------------------------------------------------------------
def read_item(item: Item, modality: str, *, mono: bool = False, size=None, tokenizer=None) -> tuple[Tensor, dict]:
    """-> (tensor with a batch axis of 1, encode kwargs). 3D items need the `tokenizer` (its point count)."""
    from zoo import media

    if modality == "3d":
        return _read_mesh_item(item, tokenizer), {}
    data = item.read_bytes()
    if modality == "audio":
        x, sr = media.audio.decode_audio(data, item.key)
        if mono and x.shape[0] > 1:
            x = media.to_mono(x)
        return x[None], {"sample_rate": int(sr)}
    if modality == "image":
        x = media.image.decode_image(data, item.key)
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


def describe_error(e: BaseException) -> str:
    """An exception as one line for a failure report: the sentence of a ValueError, else its type and text."""
    import re

    text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the data", str(e)).strip()
    return text if isinstance(e, ValueError) and text else f"{type(e).__name__}: {text}"


def run_split(fn, batch: list):
    """Yield (part, fn(part), None) for the whole batch, or, when that raises an Exception and the batch
    holds more than one item, the same for each item alone; a part that fails yields (part, None, error).
    So one bad item never takes its batch-mates down (KeyboardInterrupt and the like pass through)."""
    try:
        result = fn(batch)
    except Exception as e:  # noqa: BLE001 - reported per item by the caller
        if len(batch) == 1:
            yield batch, None, e
            return
    else:
        yield batch, result, None
        return
    for rec in batch:
        try:
            result = fn([rec])
        except Exception as e:  # noqa: BLE001
            yield [rec], None, e
        else:
            yield [rec], result, None


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
        except (ValueError, OSError, tarfile.TarError, EOFError, RuntimeError, MemoryError) as e:
            return i, None, None, f"{item.key}: {describe_error(e)}"


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


def write_shard(path: str | os.PathLike, keys: list[str], tokens: list[Tokens], codebook_size: int,
                extra_metadata: dict[str, str] | None = None) -> Path:
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
        **(extra_metadata or {}),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _shard_header(path: str | os.PathLike) -> dict | None:
    """A shard's header metadata; None when it is missing or not a readable zoo shard."""
    from safetensors import safe_open

    if not Path(path).is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception:  # any unreadable header means: not finished, redo it
        return None
    return md if md.get("format") == SHARD_FORMAT else None


def read_shard(path: str | os.PathLike) -> list[tuple[str, Tokens]]:
    """A shard -> [(key, Tokens with a batch of 1)], ids back to int64.

    Every field is checked (a ValueError names the shard and the problem), so a damaged or foreign
    file never surfaces as a KeyError or IndexError."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            names = set(f.keys())
            missing = sorted({"ids", "offsets", "shapes"} - names)
            if md.get("format") == SHARD_FORMAT and missing:
                raise ValueError(f"it lacks the tensor(s) {missing}")
            ids, offsets, shapes = (f.get_tensor(k) for k in ("ids", "offsets", "shapes")) if not missing else (None,) * 3
    except Exception as e:
        raise ValueError(f"{path} is not a readable token shard ({e}).") from e
    if md.get("format") != SHARD_FORMAT:
        raise ValueError(f"{path} is not a zoo token shard (format={md.get('format')!r}); zoo decode reads shards "
                         f"written by zoo encode and .tokens files.")
    bad = lambda why: ValueError(f"{path} is a damaged token shard: {why}.")  # noqa: E731
    try:
        version = int(md.get("format_version", 0))
        keys, metas = json.loads(md["keys"]), json.loads(md["metas"])
    except (KeyError, ValueError, TypeError) as e:
        raise bad(f"its header is incomplete or not JSON ({type(e).__name__}: {e})") from e
    if version > SHARD_FORMAT_VERSION:
        raise ValueError(f"{path} has shard format {version}; this zoo reads up to {SHARD_FORMAT_VERSION}. Upgrade zoo.")
    n = len(keys) if isinstance(keys, list) else -1
    if n < 0 or not all(isinstance(k, str) for k in keys):
        raise bad("'keys' is not a list of strings")
    if not isinstance(metas, list) or len(metas) != n or not all(isinstance(m, dict) for m in metas):
        raise bad(f"'metas' is not a list of {n} objects")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool or ids.dim() != 1:
        raise bad(f"'ids' must be a flat integer tensor; got {ids.dtype} of shape {list(ids.shape)}")
    if offsets.dtype != torch.int64 or list(offsets.shape) != [n + 1]:
        raise bad(f"'offsets' must be int64 of shape [{n + 1}]; got {offsets.dtype} {list(offsets.shape)}")
    if shapes.dtype != torch.int64 or shapes.dim() != 2 or shapes.shape[0] != n:
        raise bad(f"'shapes' must be int64 [{n}, R]; got {shapes.dtype} {list(shapes.shape)}")
    if n and (int(offsets[0]) != 0 or int(offsets[-1]) != ids.numel() or bool((offsets[1:] < offsets[:-1]).any())):
        raise bad(f"'offsets' must rise from 0 to the {ids.numel()} ids")
    if bool((shapes < 0).any()) or not torch.equal(shapes.prod(1), offsets[1:] - offsets[:-1]):
        raise bad("an item's shape does not match its number of ids")
    out = []
    for i, key in enumerate(keys):
        item = ids[offsets[i] : offsets[i + 1]].long().reshape(shapes[i].tolist())
        try:
            out.append((key, Tokens(item[None], layout=md.get("layout", ""), meta=metas[i])))
        except (ValueError, TypeError) as e:
            raise bad(f"item {key!r}: {e}") from e
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


MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "zoo.encode-manifest"


def model_fingerprint(tokenizer) -> dict:
    """What identifies a model's tokens: family, variant, config and a sha256 of its weights."""
    import hashlib

    from zoo.api import config_to_dict

    h = hashlib.sha256()
    for name, t in sorted(tokenizer.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    cfg = json.dumps(config_to_dict(tokenizer.cfg), sort_keys=True) if hasattr(tokenizer, "cfg") else ""
    return {"family": getattr(tokenizer, "family", ""), "variant": getattr(tokenizer, "variant", None),
            "config_sha256": hashlib.sha256(cfg.encode()).hexdigest(), "weights_sha256": h.hexdigest()}


def items_fingerprint(items: list[Item], sizes: bool = False) -> dict:
    """The item list (keys in order; with `sizes`, each file's size too) as a count and a sha256."""
    import hashlib

    h = hashlib.sha256()
    for it in items:
        entry = [it.key, it.member]
        if sizes:
            try:
                entry.append(it.path.stat().st_size)
            except OSError:
                entry.append(-1)
        h.update(json.dumps(entry).encode())
    return {"count": len(items), "sha256": h.hexdigest()}


def _shard_finished(path: Path, items: list[Item]) -> bool:
    """A shard is finished when it holds every one of its items and none of their files changed size since
    (else it is redone: items that failed are retried, a repaired or replaced file is encoded again)."""
    md = _shard_header(path)
    if md is None:
        return False
    try:
        keys = json.loads(md.get("keys", "null"))
    except ValueError:
        return False
    return keys == [it.key for it in items] and md.get("items_sha256") == items_fingerprint(items, sizes=True)["sha256"]


def check_manifest(out_dir: Path, manifest: dict) -> None:
    """Write `out_dir/manifest.json`, or refuse when the folder holds shards of another run."""
    path = out_dir / MANIFEST_NAME
    shards = sorted(out_dir.glob("shard-*.safetensors"))
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not readable ({e}); delete {out_dir}'s shards and manifest to start over.") from e
        if not isinstance(old, dict) or old.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path} is not a zoo encode manifest; choose another output folder.")
        diffs = []
        for section in ("model", "options", "items"):
            a, b = old.get(section) or {}, manifest[section]
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    diffs.append(f"{section}.{k}: {a.get(k)!r} before, {b.get(k)!r} now")
        if diffs:
            raise ValueError(
                f"{out_dir} holds shards of another run (another model, options or input list): "
                + "; ".join(diffs[:4]) + ". Resume only with the same model, inputs and options, or choose a new "
                "output folder (or delete its shard-*.safetensors and manifest.json)."
            )
        return
    if shards:
        raise ValueError(f"{out_dir} holds {len(shards)} shard file(s) but no {MANIFEST_NAME}, so they cannot be checked "
                         f"against this run; choose a new output folder, or delete them.")
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


class OutputLock:
    """An exclusive, non-blocking lock on `out_dir` for one rank (fcntl.flock; released when the process
    ends, even when killed). A second run into the same folder and rank is refused instead of interleaving."""

    def __init__(self, out_dir: Path, rank: int):
        self.path = Path(out_dir) / f".zoo-lock-rank{rank}"
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise ValueError(f"Another zoo run is writing to {self.path.parent} (it holds {self.path.name}); "
                             f"wait for it to finish or choose another output folder.") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


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
    `out_dir/manifest.json` records the model, the options and the item list: a re-run with the same
    ones resumes (a shard holding every one of its items, their files unchanged in size, is kept; a
    shard missing items, e.g. ones that failed, or whose files changed, is redone), a re-run with
    other ones is refused. One run per rank holds the folder (a lock file).
    """
    from tqdm import tqdm

    from zoo.media import SUFFIXES

    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1; got {shard_size}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    out_dir = prepare_out_dir(out_dir, inputs)
    items = discover(list(inputs), SUFFIXES[tokenizer.modality])
    plan = shard_plan(len(items), shard_size, rank, world_size)
    manifest = {
        "format": MANIFEST_FORMAT, "format_version": 1,
        "model": model_fingerprint(tokenizer),
        "options": {"shard_size": shard_size, "world_size": world_size, "mono": bool(mono),
                    "encode_kwargs": json.loads(json.dumps(encode_kwargs or {}, sort_keys=True, default=repr))},
        "items": items_fingerprint(items),
    }
    with OutputLock(out_dir, rank):
        check_manifest(out_dir, manifest)
        return _encode_shards(tokenizer, items, plan, out_dir, batch_size=batch_size, num_workers=num_workers,
                              rank=rank, strict=strict, mono=mono, encode_kwargs=encode_kwargs or {},
                              progress=progress, tqdm=tqdm)


def _encode_shards(tokenizer, items, plan, out_dir, *, batch_size, num_workers, rank, strict, mono, encode_kwargs,
                   progress, tqdm) -> EncodeSummary:
    todo = [(s, r) for s, r in plan if not _shard_finished(shard_path(out_dir, s), [items[i] for i in r])]
    size = getattr(tokenizer, "input_size", None)
    failures: list[str] = []
    encoded = 0
    bar = tqdm(total=sum(len(r) for _, r in todo), unit="item", disable=not progress or rank != 0)
    for s, r in todo:
        mine = [items[i] for i in r]
        done: dict[int, Tokens] = {}
        stream = iter_media(mine, tokenizer.modality, num_workers=num_workers, mono=mono, size=size, tokenizer=tokenizer)
        for batch in batched(stream, batch_size):
            if batch[0][3] is not None:
                if strict:
                    raise ValueError(batch[0][3])
                failures.append(batch[0][3])
                bar.update(1)
                continue
            for part, t, err in run_split(lambda part: tokenizer.encode(
                    torch.cat([b[1] for b in part]), **part[0][2], **encode_kwargs), batch):
                if err is not None:
                    if strict:
                        raise ValueError(f"{mine[part[0][0]].key}: {describe_error(err)}") from err
                    failures.append(f"{mine[part[0][0]].key}: {describe_error(err)}")
                    continue
                for j, b in enumerate(part):
                    item = t[j]
                    item.meta["source"] = mine[b[0]].key
                    done[b[0]] = item
            bar.update(len(batch))
        order = sorted(done)
        encoded += len(order)
        if order:
            write_shard(shard_path(out_dir, s), [mine[i].key for i in order], [done[i] for i in order],
                        tokenizer.codebook_size, {"items_sha256": items_fingerprint(mine, sizes=True)["sha256"]})
    bar.close()
    fail_path = out_dir / f"failures-rank{rank}.jsonl"
    if failures:
        atomic_write_text(fail_path, "".join(json.dumps({"item": f}) + "\n" for f in failures))
    elif fail_path.is_file() and todo:
        fail_path.unlink()  # the items that failed before were redone and encoded now
    return EncodeSummary(len(todo), len(plan) - len(todo), encoded, failures)


def iter_token_files(paths: list[str | os.PathLike]) -> Iterator[tuple[Path, Path | None]]:
    """(file, the folder it was found in or None) for .tokens and shard files, in order."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(f for f in p.rglob("*") if f.suffix in (".tokens", ".safetensors") and f.is_file()):
                yield f, p
        elif p.exists():
            yield p, None
        else:
            raise FileNotFoundError(f"No such tokens file or folder: {p}")


def read_token_file(f: Path, folder: Path | None) -> list[tuple[str, Tokens]]:
    """[(key, Tokens)] of one .tokens file (keyed by its path in `folder`, else its stem) or shard."""
    if f.suffix == ".tokens":
        return [((f.relative_to(folder).with_suffix("").as_posix() if folder else f.stem), Tokens.load(f))]
    return read_shard(f)

