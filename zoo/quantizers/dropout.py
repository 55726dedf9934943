"""Token dropout that teaches a decoder to work from any prefix of an ordered 1D token sequence.

- NestedDropout: Rippel et al., "Learning Ordered Representations with Nested Dropout",
  arXiv:1402.0915, as used by FlexTok (Bachmann et al., arXiv:2502.13967; apple/ml-flextok,
  `MaskedNestedDropout`, Apple sample-code license, read, not copied): per sample, keep the first k
  tokens and overwrite the tail with a learned mask token (or zeros).
- TailTokenDrop: One-D-Piece (Miwa et al., arXiv:2501.10064; turingmotors/One-D-Piece, Apache-2.0):
  once per batch, keep the first k tokens and cut the rest off (the sequence gets shorter).
Both act in training only and are the identity in eval unless a `keep` is passed explicitly
(FlexTok's inference path masks a chosen prefix length). Randomness comes from a `generator=` argument
(else the global torch RNG), so a seeded generator reproduces the draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["NestedDropout", "TailTokenDrop", "TokenDropOutput"]

_MODES = ("uniform", "pow2", "uniform_pow2")


@dataclass
class TokenDropOutput:
    """x: the tokens after dropout; keep: [B] int64, how many leading tokens of each item are real."""

    x: Tensor
    keep: Tensor


def _check_tokens(x: Tensor, name: str) -> None:
    if x.ndim != 3:
        raise ValueError(f"{name} expects tokens [B, N, D]; got shape {list(x.shape)}.")


class NestedDropout(nn.Module):
    """x [B, N, D] -> TokenDropOutput(x with positions >= keep[b] replaced, keep [B]).

    Args:
      dim: D (size of the learned `mask_token`, a parameter [D], when fill == "mask").
      num_tokens: N, the longest sequence.
      mode: how keep is drawn per sample in training:
        "uniform": k ~ U{1..N};  "pow2": k uniform over {1, 2, 4, ..., N} (N a power of two, or N is
        added as the last choice);  "uniform_pow2": k ~ U{1..N} rounded up to a power of two (capped at N).
      choices: an explicit set of allowed k (overrides mode), drawn uniformly.
      fill: "mask" (learned token) or "zeros".
    forward(x, keep=None, generator=None): in training, keep is drawn unless given; in eval, x is
    returned unchanged unless keep is given (an int or [B] tensor), which is then applied.
    """

    def __init__(self, dim: int, num_tokens: int, mode: str = "uniform", choices: Sequence[int] | None = None,
                 fill: str = "mask"):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"NestedDropout mode must be one of {_MODES}; got {mode!r}.")
        if fill not in ("mask", "zeros"):
            raise ValueError(f"NestedDropout fill must be 'mask' or 'zeros'; got {fill!r}.")
        if choices is not None and (not choices or min(choices) < 1 or max(choices) > num_tokens):
            raise ValueError(f"NestedDropout choices must lie in [1, {num_tokens}]; got {list(choices)}.")
        self.dim, self.num_tokens, self.mode, self.fill = dim, num_tokens, mode, fill
        self.choices = sorted(set(int(c) for c in choices)) if choices is not None else None
        if fill == "mask":
            self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_tokens={self.num_tokens}, mode={self.mode!r}, fill={self.fill!r}"

    def sample_keep(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """[B] int64 prefix lengths in [1, N], drawn as `mode` / `choices` say (on the generator's device)."""
        n = self.num_tokens
        dev = generator.device if generator is not None else torch.device("cpu")
        if self.choices is not None or self.mode == "pow2":
            opts = self.choices or sorted({min(2**i, n) for i in range((n - 1).bit_length() + 1)})
            pick = torch.randint(0, len(opts), (batch_size,), generator=generator, device=dev)
            return torch.tensor(opts, device=dev)[pick]
        k = torch.randint(1, n + 1, (batch_size,), generator=generator, device=dev)
        if self.mode == "uniform_pow2":
            k = (2 ** torch.ceil(torch.log2(k.double()))).long().clamp(max=n)
        return k

    def forward(self, x: Tensor, keep: int | Tensor | None = None, generator: torch.Generator | None = None) -> TokenDropOutput:
        _check_tokens(x, "NestedDropout")
        b, n, _ = x.shape
        if keep is None:
            if not self.training:
                return TokenDropOutput(x, torch.full((b,), n, dtype=torch.long, device=x.device))
            keep = self.sample_keep(b, generator)
        keep = torch.as_tensor(keep, dtype=torch.long, device=x.device).expand(b).clone()  # [B]
        if int(keep.min()) < 0 or int(keep.max()) > n:
            raise ValueError(f"keep must lie in [0, {n}] for {n} tokens; got {keep.tolist()}.")
        drop = torch.arange(n, device=x.device)[None, :] >= keep[:, None]  # [B, N]
        fill = self.mask_token.to(x.dtype) if self.fill == "mask" else x.new_zeros(())
        return TokenDropOutput(torch.where(drop[..., None], fill, x), keep)


class TailTokenDrop(nn.Module):
    """x [B, N, D] -> TokenDropOutput(x[:, :k], keep [B] all k): one k ~ U{min_keep..N} per batch, in
    training only (One-D-Piece's tail token drop). In eval it is the identity unless keep is given."""

    def __init__(self, min_keep: int = 1):
        super().__init__()
        if min_keep < 1:
            raise ValueError(f"TailTokenDrop min_keep must be >= 1; got {min_keep}.")
        self.min_keep = min_keep

    def forward(self, x: Tensor, keep: int | None = None, generator: torch.Generator | None = None) -> TokenDropOutput:
        _check_tokens(x, "TailTokenDrop")
        b, n, _ = x.shape
        if keep is None:
            if not self.training:
                return TokenDropOutput(x, torch.full((b,), n, dtype=torch.long, device=x.device))
            lo = min(self.min_keep, n)
            dev = generator.device if generator is not None else torch.device("cpu")
            keep = int(torch.randint(lo, n + 1, (1,), generator=generator, device=dev))
        if not 1 <= int(keep) <= n:
            raise ValueError(f"keep must lie in [1, {n}] for {n} tokens; got {keep}.")
        keep = int(keep)
        return TokenDropOutput(x[:, :keep], torch.full((b,), keep, dtype=torch.long, device=x.device))
