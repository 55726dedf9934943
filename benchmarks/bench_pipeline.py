"""Folder encode throughput of zoo.pipelines: items/s at 0, 1 and 2 reader workers, and the share of
time spent reading (decoding files) versus running the model, measured in one run.

    python benchmarks/bench_pipeline.py [--model wavtokenizer-tiny-24k] [--items 32] [--threads 2]

Audio models read the shipped speech sample cut into clips; image models read crops of the photos
that ship with scikit-image. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import zoo  # noqa: E402
from zoo import media, pipelines  # noqa: E402
from zoo.media import SUFFIXES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_data(tok, folder: Path, n: int) -> None:
    if tok.modality == "audio":
        wav, sr = media.load_audio(REPO / "samples" / "speech_16k.wav")
        clip = 2 * sr
        for i in range(n):
            start = (i * sr // 2) % (wav.shape[-1] - clip)
            media.save_audio(folder / f"clip{i:04d}.flac", wav[:, start : start + clip], sr)
    else:
        from skimage import data

        photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
        size = getattr(tok, "input_size", None) or (64, 64)
        for i in range(n):
            img = torch.from_numpy(photos[i % len(photos)]).permute(2, 0, 1).float() / 255
            off = (i * 13) % 64
            img = img[:, off : off + 256, off : off + 256]
            media.save_image(folder / f"img{i:04d}.png", media.resize_center_crop(img, size))


def read_only(items, modality, workers, size) -> float:
    t = time.perf_counter()
    for _ in pipelines.iter_media(items, modality, num_workers=workers, size=size):
        pass
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wavtokenizer-tiny-24k")
    p.add_argument("--items", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tok = zoo.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        make_data(tok, data, args.items)
        items = pipelines.discover([data], SUFFIXES[tok.modality])
        size = getattr(tok, "input_size", None)
        # warm-up (first-call allocations, reader imports)
        pipelines.encode_dataset(tok, [data], Path(tmp) / "warm", shard_size=args.items, batch_size=args.batch_size, progress=False)
        rows = []
        for workers in (0, 1, 2):
            out = Path(tmp) / f"out{workers}"
            t = time.perf_counter()
            s = pipelines.encode_dataset(tok, [data], out, shard_size=args.items, batch_size=args.batch_size,
                                         num_workers=workers, progress=False)
            total = time.perf_counter() - t
            reading = read_only(items, tok.modality, workers, size)
            rows.append((workers, s.items_encoded, total, reading))
    print(f"model {args.model} ({tok.modality}), {args.items} items, batch {args.batch_size}, {args.threads} torch threads")
    print(f"{'workers':>7} {'items/s':>9} {'total s':>8} {'vs 0 workers':>12}")
    base = rows[0][1] / rows[0][2]
    for w, n, total, _ in rows:
        print(f"{w:>7} {n / total:>9.2f} {total:>8.2f} {n / total / base:>11.2f}x")
    _, _, total0, reading0 = rows[0]
    print(f"time split with 0 workers (reading in the main process): {reading0 / total0:.1%} reading and decoding "
          f"files, {1 - reading0 / total0:.1%} model and shard writing")

if __name__ == "__main__":
    main()
