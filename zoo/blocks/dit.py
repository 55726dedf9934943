"""Old import path of DiT's pieces, kept for selftok's imports (its only user); new code imports from
zoo.blocks.embeddings, zoo.blocks.mlp and zoo.blocks.transformer, where these live.

DiT: Peebles & Xie, arXiv 2212.09748, github.com/facebookresearch/DiT (CC-BY-NC).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from zoo.blocks import mlp
from zoo.blocks.embeddings import TimestepEmbedder, sincos_1d, sincos_2d, timestep_embedding
from zoo.blocks.transformer import modulate

__all__ = ["Mlp", "TimestepEmbedder", "modulate", "sincos_1d", "sincos_2d", "timestep_embedding"]


def Mlp(dim: int, hidden: int, approximate: str = "tanh") -> mlp.Mlp:  # noqa: N802 - stands in for the class it builds
    """DiT's MLP: zoo.blocks.mlp.Mlp with GELU (tanh approximation by default)."""
    return mlp.Mlp(dim, hidden, act=partial(nn.GELU, approximate=approximate))
