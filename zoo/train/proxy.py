"""Proxy-code teachers for TiTok-style two-stage training (One-D-Piece's stage 1).

TiTok (arXiv 2406.07550, github bytedance/1d-tokenizer, Apache-2.0) and One-D-Piece (arXiv 2501.10064,
github turingmotors/One-D-Piece, Apache-2.0) first train the tokenizer to predict, at every position
of the decoder's grid, the code that a frozen MaskGIT-VQGAN (arXiv 2202.04200) gives that image patch
(cross-entropy on "proxy codes"); only the second stage trains through pixels. The proxy targets are
what makes the encoder image-dependent from the first steps.

Two teachers, both `images [B, 3, S, S] in [0, 1] -> ids [B, S / p, S / p]` (int64):
- `MaskGITVQGANTeacher`: the real one. MaskGIT-VQGAN's encoder (zoo.blocks.maskgit_vqgan.VQGANEncoder)
  and the nearest (Euclidean) of its 1024 x 256 codes, p = 16. Upstream's file is
  `maskgit-vqgan-imagenet-f16-256.bin` in the hub repo `fun-research/TiTok`; upstream feeds it the
  training batch as it is, in [0, 1] (ToTensor, Normalize(0, 1)), as here.
- `PatchKMeansTeacher`: a stand-in that needs no download: the nearest of K k-means centroids of raw
  pixel patches, fitted once on training crops by `fit_patch_kmeans` (`python training/fit_proxy_teacher.py`).

`load_teacher(path)` reads either file. Written anew from a reading of the upstream code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from zoo.blocks.maskgit_vqgan import VQGANEncoder
from zoo.hub import check_state_dict
from zoo.quantizers.vq import kmeans, nearest_codes
from zoo.tokenizers.one_d_piece.convert import (MASKGIT_VQGAN_ACCEPTED, maskgit_vqgan_teacher_sizes,
                                                maskgit_vqgan_teacher_state)

__all__ = ["MaskGITVQGANTeacher", "PatchKMeansTeacher", "fit_patch_kmeans", "load_teacher"]


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

    def decode(self, probs: Tensor) -> Tensor:
        """The teacher's own decoder: code probabilities (or one-hot codes) [B, K, h, w] -> images
        [B, 3, h p, w p], each patch the probability-weighted mix of the centroids. Differentiable in probs."""
        if probs.dim() != 4 or probs.shape[1] != self.num_codes:
            raise ValueError(f"PatchKMeansTeacher.decode takes code probabilities [B, {self.num_codes}, h, w]; "
                             f"got shape {list(probs.shape)}.")
        patches = torch.einsum("bkhw,kd->bhwd", probs.float(), self.centroids)  # [B, h, w, 3 p p]
        return rearrange(patches, "b h w (c p q) -> b c (h p) (w q)", p=self.patch_size, q=self.patch_size)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"centroids": self.centroids.contiguous()}, str(tmp),
                  metadata={"kind": "patch_kmeans", "patch_size": str(self.patch_size)})
        os.replace(tmp, path)  # atomic: a reader never sees half a file


def load_teacher(path: str | Path) -> PatchKMeansTeacher | MaskGITVQGANTeacher:
    """A proxy teacher from a file: the official MaskGIT-VQGAN state dict (`.bin` / `.pt` / `.pth`, a torch
    pickle of tensors, read with weights_only=True, or the same keys as safetensors) or a patch k-means
    file written by `PatchKMeansTeacher.save` (safetensors with kind=patch_kmeans in its header)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"proxy teacher {path} not found; give the official MaskGIT-VQGAN file "
                                "(maskgit-vqgan-imagenet-f16-256.bin from the hub repo fun-research/TiTok) or write a "
                                "stand-in with `python training/fit_proxy_teacher.py RECIPE.yaml --out PATH`.")
    if path.suffix == ".safetensors":
        with safe_open(str(path), "pt") as f:
            meta, keys = f.metadata() or {}, set(f.keys())
        if meta.get("kind") == "patch_kmeans" and "patch_size" in meta:
            return PatchKMeansTeacher(load_file(str(path))["centroids"], int(meta["patch_size"]))
        if any(k.startswith(("encoder.", "quantize.")) for k in keys):
            return MaskGITVQGANTeacher.from_state_dict(load_file(str(path)), source=str(path))
        raise ValueError(f"{path} is not a proxy teacher file: its header says kind={meta.get('kind')!r} (expected "
                         "'patch_kmeans' with a patch_size) and it holds no MaskGIT-VQGAN encoder.* / quantize.* keys.")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torch pickle of tensors only; anything else is not a teacher
        raise ValueError(f"{path} is neither safetensors nor a torch state-dict file loadable with weights_only=True "
                         f"({type(e).__name__}: {str(e)[:200]}).") from e
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not a flat state dict of tensors "
                         "(the official MaskGIT-VQGAN file is one: encoder.*, decoder.*, quantize.embedding.weight).")
    return MaskGITVQGANTeacher.from_state_dict(state_dict, source=str(path))


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


# ----------------------------------------------------------------------------------------------
# MaskGIT-VQGAN (the official teacher)
# ----------------------------------------------------------------------------------------------
class MaskGITVQGANTeacher(nn.Module):
    """Proxy codes = nearest code (squared Euclidean, as upstream's quantizer) of the MaskGIT-VQGAN
    encoder's output at each position. Defaults = the released `maskgit-vqgan-imagenet-f16-256`:
    hidden 128, channel_mult (1, 1, 2, 2, 4), 2 residual blocks per level, 1024 codes of dim 256, p = 16.

    x: [B, 3, H, W] in [0, 1] (H, W multiples of p) -> ids [B, H / p, W / p] int64. Runs in fp32 even
    inside an autocast region (the argmin over 1024 distances should not see bf16 rounding).
    """

    def __init__(self, channels: int = 128, channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4), num_res_blocks: int = 2,
                 z_channels: int = 256, num_codes: int = 1024):
        super().__init__()
        self.encoder = VQGANEncoder(channels, channel_mult, num_res_blocks, z_channels)
        self.register_buffer("codebook", torch.zeros(num_codes, z_channels))  # [K, D]
        self.requires_grad_(False)
        self.eval()

    @property
    def num_codes(self) -> int:
        return self.codebook.shape[0]

    @property
    def patch_size(self) -> int:
        return self.encoder.downsampling

    def train(self, mode: bool = True) -> "MaskGITVQGANTeacher":
        return super().train(False)  # frozen: a parent's .train() must not change it (it has no dropout anyway)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        p = self.patch_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"the MaskGIT-VQGAN proxy teacher takes images [B, 3, H, W] in [0, 1] with H and W "
                             f"multiples of {p}; got shape {list(x.shape)}.")
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.encoder(x.to(self.codebook.dtype))  # [B, D, H/p, W/p]
            b, _, h, w = z.shape
            ids = nearest_codes(rearrange(z, "b d h w -> (b h w) d"), self.codebook)  # [B h w]
        return ids.reshape(b, h, w)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], source: str = "the state dict") -> "MaskGITVQGANTeacher":
        """The official file's keys (`encoder.*`, `quantize.embedding.weight`; `decoder.*` ignored; renamed by
        zoo.tokenizers.one_d_piece.convert) -> a teacher whose sizes are read from the shapes. Strict: a missing,
        unexpected or mis-shaped key is a ValueError that names it. Built on the meta device and filled by
        assignment (no random init, no copy; meta tensors in, a meta teacher out, which is how the released
        layout is checked without the file)."""
        sizes = maskgit_vqgan_teacher_sizes(state_dict, source)
        with torch.device("meta"):
            teacher = cls(**sizes)
        ours = maskgit_vqgan_teacher_state(state_dict)
        check_state_dict(teacher, ours, source=f"{source} (a MaskGIT-VQGAN teacher; the sizes its shapes imply: {sizes})",
                         hint=MASKGIT_VQGAN_ACCEPTED)
        teacher.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True, assign=True)
        return teacher.requires_grad_(False).eval()
