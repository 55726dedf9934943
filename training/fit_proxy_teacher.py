"""Fit the proxy-code teacher of a One-D-Piece recipe (TiTok's stage 1) on the recipe's training crops.

    python training/fit_proxy_teacher.py recipes/one_d_piece/tiny-cpu.yaml [--images 4096] [--iters 20]

Draws `--images` crops from the recipe's data section (same sizes and augmentation as training),
takes every decoder_patch_size x decoder_patch_size patch, and runs k-means with
proxy_codebook_size centroids (zoo.train.proxy.PatchKMeansTeacher: a stand-in for the
MaskGIT-VQGAN that upstream uses, for sizes or machines without it). Writes the file the recipe's
`loss.proxy_teacher` names (or --out). With the official teacher file
(maskgit-vqgan-imagenet-f16-256.bin, hub repo fun-research/TiTok) nothing is fitted: point
`loss.proxy_teacher` at it (recipes/one_d_piece/s256-stage1.yaml).
"""

from __future__ import annotations

import argparse
import time

import torch

from zoo.train.data import DataConfig, build_dataset
from zoo.train.proxy import fit_patch_kmeans
from zoo.train.recipe import ModelConfig, TrainConfig, load_recipe, parse


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("overrides", nargs="*", help="section.key=value, as for the training program")
    ap.add_argument("--images", type=int, default=4096, help="training crops to take patches from")
    ap.add_argument("--iters", type=int, default=20, help="Lloyd iterations")
    ap.add_argument("--out", default=None, help="default: the recipe's loss.proxy_teacher")
    args = ap.parse_args(argv)

    raw = load_recipe(args.recipe, args.overrides)  # a train_autoencoder.py recipe; the sections used here
    if raw.get("program", "train_autoencoder") != "train_autoencoder":
        raise SystemExit(f"{args.recipe} is a recipe for {raw['program']}; the proxy teacher serves train_autoencoder.py.")
    model = parse(ModelConfig, raw.get("model") or {}, f"{args.recipe}: model")
    data = parse(DataConfig, raw.get("data") or {}, f"{args.recipe}: data")
    train = parse(TrainConfig, raw.get("train") or {}, f"{args.recipe}: train")
    model_cfg = dict(model.config)
    out = args.out or (raw.get("loss") or {}).get("proxy_teacher")
    if out is None:
        raise SystemExit("Name the output: --out PATH, or loss.proxy_teacher in the recipe.")
    if model.family != "one_d_piece" or "decoder_patch_size" not in model_cfg:
        raise SystemExit("The recipe must build a new one_d_piece model with decoder_patch_size and "
                         "proxy_codebook_size in model.config.")
    dataset = build_dataset(data)
    g = torch.Generator().manual_seed(train.seed)
    t0 = time.perf_counter()
    picks = torch.randint(0, len(dataset), (args.images,), generator=g).tolist()
    images = torch.stack([dataset[(i, train.seed + n)] for n, i in enumerate(picks)])  # [N, 3, S, S]
    teacher = fit_patch_kmeans(images, int(model_cfg["decoder_patch_size"]), int(model_cfg["proxy_codebook_size"]),
                               iters=args.iters, seed=train.seed)
    used = teacher(images).unique().numel()
    teacher.save(out)
    print(f"{out}: {teacher.num_codes} centroids of {teacher.patch_size}x{teacher.patch_size} patches from "
          f"{len(images)} crops ({used} codes used on them), {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
