"""REPA (one user, FlexTok's training: kept here as its own paper's training method, not FlexTok's).

Representation alignment of a generator's intermediate features with a frozen vision encoder.

Paper: Yu et al., "Representation Alignment for Generation: Training Diffusion Transformers Is Easier
Than You Think", arXiv 2410.06940 (upstream sihyun-yu/REPA, MIT). FlexTok (arXiv 2502.13967,
apple/ml-flextok) aligns its decoder's patch features after block 1 with DINOv2-L. Written here from
the papers; no upstream code is copied.

Pieces (training only; nothing here runs at inference):
- `ReprProjector(dim, hidden, out_dim)`: the 3-layer SiLU MLP that maps generator features to the
  encoder's width (REPA's projector).
- `FrozenFeatureEncoder`: a timm vision transformer (e.g. `vit_large_patch14_dinov2.lvd142m`), frozen,
  images [B, 3, H, W] in [0, 1] -> patch features [B, N, C] (prefix tokens dropped, ImageNet
  normalisation applied). timm is imported lazily (extra [train]).
- `align_to_grid(feats, h, w)`: encoder features [B, N, C] on a square grid -> [B, h*w, C] on the
  generator's patch grid (bilinear resampling when the grids differ).
- `repa_loss(pred, target)`: 1 - mean cosine similarity over tokens (REPA's negative similarity
  shifted by one so the loss is >= 0; same gradient).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ReprProjector(nn.Sequential):
    """features [..., dim] -> [..., out_dim]: Linear, SiLU, Linear, SiLU, Linear (REPA's projector)."""

    def __init__(self, dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))


class FrozenFeatureEncoder(nn.Module):
    """A frozen timm ViT: images [B, 3, H, W] in [0, 1] -> patch features [B, N, C].

    Args:
      name: a timm model name, e.g. "vit_large_patch14_dinov2.lvd142m" (DINOv2-L/14, REPA's and FlexTok's choice).
      image_size: side the images are resized to before the encoder (224 for DINOv2/14 gives 16x16 patches).
      pretrained: load timm's pretrained weights (from the Hugging Face cache, or the network when allowed);
        False builds random weights (tests only: the features then carry no meaning).
    """

    def __init__(self, name: str, image_size: int = 224, pretrained: bool = True):
        super().__init__()
        try:
            import timm
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("REPA with a timm encoder needs timm: pip install 'tokenizer-zoo[train]'") from e
        try:
            self.net = timm.create_model(name, pretrained=pretrained, num_classes=0, img_size=image_size)
        except Exception as e:
            how = "its pretrained weights could not be loaded (offline? set HF_HUB_OFFLINE=0 once or fill the cache)" \
                if pretrained else "timm could not build it"
            raise ValueError(f"REPA encoder {name!r} at {image_size}px: {how} ({type(e).__name__}: {e}).") from e
        self.image_size = image_size
        self.width = int(self.net.num_features)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = F.interpolate(images.float(), size=(self.image_size,) * 2, mode="bicubic", align_corners=False)
        x = (x - self.mean) / self.std
        feats = self.net.forward_features(x.to(next(self.net.parameters()).dtype))  # [B, prefix + N, C]
        return feats[:, self.net.num_prefix_tokens:]  # [B, N, C]


def align_to_grid(feats: Tensor, h: int, w: int) -> Tensor:
    """Encoder patch features [B, N, C] (N a square) or [B, C, g, g] -> [B, h*w, C] on an h x w grid."""
    if feats.dim() == 3:
        g = math.isqrt(feats.shape[1])
        if g * g != feats.shape[1]:
            raise ValueError(f"REPA encoder features [B, N, C] need a square number of patches; got N = {feats.shape[1]}.")
        feats = rearrange(feats, "b (h w) c -> b c h w", h=g)  # [B, C, g, g]
    if feats.dim() != 4:
        raise ValueError(f"REPA encoder features must be [B, N, C] or [B, C, h, w]; got shape {list(feats.shape)}.")
    if feats.shape[-2:] != (h, w):
        feats = F.interpolate(feats.float(), size=(h, w), mode="bilinear", align_corners=False)
    return rearrange(feats, "b c h w -> b (h w) c")  # [B, h*w, C]


def repa_loss(pred: Tensor, target: Tensor) -> Tensor:
    """pred, target [B, N, C] -> 1 - mean over (B, N) of cos(pred, target) (target carries no gradient)."""
    if pred.shape != target.shape:
        raise ValueError(f"REPA: projected features {list(pred.shape)} and encoder features {list(target.shape)} differ in shape.")
    return 1.0 - F.cosine_similarity(pred.float(), target.detach().float(), dim=-1).mean()
