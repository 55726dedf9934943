"""Proxy-code teachers for TiTok-style two-stage training (One-D-Piece's stage 1).

TiTok (arXiv 2406.07550, github bytedance/1d-tokenizer) and One-D-Piece (arXiv 2501.10064) first
train the tokenizer to predict, at every position of the decoder's grid, the code that a frozen
MaskGIT-VQGAN gives that image patch (cross-entropy on "proxy codes"); only the second stage trains
through pixels. The proxy targets are what makes the encoder image-dependent from the first steps.
The MaskGIT-VQGAN weights do not ship here, so `PatchKMeansTeacher` stands in for them: the codes are
the nearest of K k-means centroids of raw pixel patches (a VQ "tokenizer" without learning), fitted
once on training crops by `fit_patch_kmeans` (`python training/fit_proxy_teacher.py`).

A teacher maps images [B, 3, S, S] in [0, 1] -> ids [B, S / p, S / p] (int64).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from zoo.quantizers.vq import kmeans, nearest_codes

__all__ = ["PatchKMeansTeacher", "fit_patch_kmeans", "load_teacher"]


class PatchKMeansTeacher(nn.Module):
    """Proxy codes = nearest k-means centroid of each p x p RGB patch. centroids: [K, 3 p p]."""

    def __init__(self, centroids: Tensor, patch_size: int):
        super().__init__()
        if centroids.dim() != 2 or centroids.shape[1] != 3 * patch_size**2:
            raise ValueError(f"centroids must be [K, 3 * {patch_size}^2 = {3 * patch_size**2}] for patch size "
                             f"{patch_size}; got shape {list(centroids.shape)}.")
        self.patch_size = patch_size
        self.register_buffer("centroids", centroids.float())

    @property
    def num_codes(self) -> int:
        return self.centroids.shape[0]

    def patches(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] -> [B, H/p, W/p, 3 p p] (H and W must be multiples of p)."""
        p = self.patch_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"the proxy teacher takes images [B, 3, H, W] with H and W multiples of {p}; "
                             f"got shape {list(x.shape)}.")
        return rearrange(x.float(), "b c (h p) (w q) -> b h w (c p q)", p=p, q=p)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        patches = self.patches(x)
        ids = nearest_codes(patches.reshape(-1, patches.shape[-1]), self.centroids)
        return ids.reshape(patches.shape[:3])  # [B, H/p, W/p]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"centroids": self.centroids.contiguous()}, str(tmp),
                  metadata={"kind": "patch_kmeans", "patch_size": str(self.patch_size)})
        os.replace(tmp, path)  # atomic: a reader never sees half a file


def load_teacher(path: str | Path) -> PatchKMeansTeacher:
    """A teacher file written by `PatchKMeansTeacher.save` (safetensors with its patch size in the header)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"proxy teacher {path} not found; write one with "
                                "`python training/fit_proxy_teacher.py RECIPE.yaml --out PATH`.")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("kind") != "patch_kmeans" or "patch_size" not in meta:
        raise ValueError(f"{path} is not a proxy teacher file (its header says kind={meta.get('kind')!r}; "
                         "expected 'patch_kmeans' with a patch_size).")
    return PatchKMeansTeacher(load_file(str(path))["centroids"], int(meta["patch_size"]))


def fit_patch_kmeans(images: Tensor, patch_size: int, num_codes: int, iters: int = 20,
                     seed: int = 0) -> PatchKMeansTeacher:
    """k-means (Lloyd, `iters` rounds) of every p x p patch of images [N, 3, H, W] -> a teacher."""
    probe = PatchKMeansTeacher(torch.zeros(1, 3 * patch_size**2), patch_size)
    patches = probe.patches(images).reshape(-1, 3 * patch_size**2)
    if patches.shape[0] < num_codes:
        raise ValueError(f"{patches.shape[0]} patches cannot give {num_codes} distinct centroids; give more images.")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        centroids, _ = kmeans(patches, num_codes, iters)
    return PatchKMeansTeacher(centroids, patch_size)
