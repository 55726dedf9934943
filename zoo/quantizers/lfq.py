"""Lookup-free quantization (LFQ), with the group-wise variant (GQ).

Papers: Yu et al., "Language Model Beats Diffusion: Tokenizer is Key to Visual Generation" (MAGVIT-v2),
arXiv:2310.05737 (sign quantization + entropy penalty); Luo et al., "Open-MAGVIT2", arXiv:2409.04410;
WeTok, arXiv:2508.05599 (group-wise lookup-free quantization: one small codebook per channel group).
Reference implementations read (not copied): lucidrains/vector-quantize-pytorch
`lookup_free_quantization.py` (MIT), TencentARC/SEED-Voken (Open-MAGVIT2, Apache-2.0), zhuangshaobin/WeTok.

Why ours and not `vector_quantize_pytorch.LFQ`: its bit order puts the first channel in the MOST
significant bit, while Open-MAGVIT2 / WeTok (whose checkpoints we load) put it in the least
significant bit; we also keep eval mode free of loss computation and ids int64 per group.

Layout. Input [..., G * b] (channel last). Group g owns channels [g*b, (g+1)*b). Each channel is
quantized to +1 if > 0 else -1 (times `codebook_scale`). Group g's id is sum_j [q_{g*b+j} > 0] * 2^j:
the FIRST channel of a group is the LEAST significant bit. ids: [..., G].
Worked example, b = 4, G = 2: channels (0.3, -1.2, 0.0, 2.0 | -0.1, 0.5, 0.7, -3.0)
  signs    (+, -, -, + | -, +, +, -)     (0.0 is not > 0, so it is -1)
  group 0: bits j=0..3 = 1,0,0,1 -> 1 + 8 = 9;  group 1: bits 0,1,1,0 -> 2 + 4 = 6;  ids = (9, 6).

Training losses (computed only in training mode, per group over that group's 2^b codes, never over the
joint 2^(G*b) vocabulary; memory grows with N * G * 2^b):
  logits = 2 <x_g, c> / temperature for every code c in {-1, +1}^b  (x_g: [N, b] the group's channels),
  p = softmax(logits) [N, G, 2^b]; sample entropy = mean_{n,g} H(p_ng);
  batch entropy ("pooled", Open-MAGVIT2 / WeTok's official numerics: the groups share one codebook, so
  their probabilities are pooled) = H(mean_{n,g} p_ng); ("per_group") = mean_g H(mean_n p_ng);
  "entropy" = entropy_weight * (sample_entropy_weight * sample - batch_entropy_weight * batch),
  "commitment" = commitment_weight * mean((x - sg(q))^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.quantizers.base import Quantizer, QuantizerOutput
from zoo.quantizers.vq import usage_metrics

__all__ = ["LFQ"]

# Rows of x per chunk in the entropy computation: bounds the [rows, G, 2^b] probability tensor.
_ENTROPY_CHUNK_ELEMENTS = 1 << 24


class LFQ(Quantizer):
    """z: [..., dim] -> QuantizerOutput(quantized [..., dim], ids [..., G] int64, losses, metrics).

    Args:
      bits_per_group: b; each group has a 2^b codebook (`codebook_size` = 2^b, `num_codebooks` = G).
      num_groups: G.
      dim: input channels; project_in/project_out are nn.Linear when dim != G * b.
      entropy_weight: weight of the entropy penalty (0 disables it).
      commitment_weight: weight of the commitment loss.
      sample_entropy_weight / batch_entropy_weight: the two terms of the entropy penalty.
      temperature: softmax temperature of the entropy penalty (Open-MAGVIT2 / WeTok: 0.01).
      batch_entropy: "pooled" (official WeTok / Open-MAGVIT2) or "per_group" (see the module docstring).
      codebook_scale: magnitude of the quantized values (+-scale).
      eps: inside the batch-entropy log, as Open-MAGVIT2.
    The straight-through estimator is used whenever the input requires grad.
    """

    def __init__(
        self,
        bits_per_group: int,
        num_groups: int = 1,
        *,
        dim: int | None = None,
        entropy_weight: float = 0.1,
        commitment_weight: float = 0.25,
        sample_entropy_weight: float = 1.0,
        batch_entropy_weight: float = 1.0,
        temperature: float = 0.01,
        batch_entropy: str = "pooled",
        codebook_scale: float = 1.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if batch_entropy not in ("pooled", "per_group"):
            raise ValueError(f"LFQ batch_entropy must be 'pooled' or 'per_group'; got {batch_entropy!r}.")
        self.batch_entropy = batch_entropy
        if not 1 <= bits_per_group <= 30 or num_groups < 1:
            raise ValueError(
                f"LFQ needs 1 <= bits_per_group <= 30 and num_groups >= 1; got {bits_per_group}, {num_groups}."
            )
        self.bits_per_group, self.num_groups = bits_per_group, num_groups
        self.codebook_dim = bits_per_group * num_groups
        self.dim = self.codebook_dim if dim is None else dim
        self.codebook_size, self.num_codebooks = 2**bits_per_group, num_groups
        self.entropy_weight, self.commitment_weight = entropy_weight, commitment_weight
        self.sample_entropy_weight, self.batch_entropy_weight = sample_entropy_weight, batch_entropy_weight
        self.temperature, self.codebook_scale, self.eps = temperature, codebook_scale, eps
        self.project_in = nn.Linear(self.dim, self.codebook_dim) if self.dim != self.codebook_dim else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, self.dim) if self.dim != self.codebook_dim else nn.Identity()
        # bit j of a group has weight 2^j (first channel = least significant bit); non-persistent.
        self.register_buffer("_bit_weights", 2 ** torch.arange(bits_per_group), persistent=False)

    def extra_repr(self) -> str:
        return f"bits_per_group={self.bits_per_group}, num_groups={self.num_groups}, dim={self.dim}"

    def group_codebook(self) -> Tensor:
        """[2^b, b]: row k holds code k's values (+-scale) in channel order (bit 0 first)."""
        ks = torch.arange(self.codebook_size, device=self._bit_weights.device)
        bits = (ks[:, None] & self._bit_weights) != 0  # [2^b, b]
        return torch.where(bits, self.codebook_scale, -self.codebook_scale).float()

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """codes [..., G * b] (signs matter) -> ids [..., G]."""
        if codes.shape[-1] != self.codebook_dim:
            raise ValueError(f"LFQ codes end in {self.codebook_dim} channels; got shape {list(codes.shape)}.")
        bits = (codes > 0).long().unflatten(-1, (self.num_groups, self.bits_per_group))  # [..., G, b]
        return (bits * self._bit_weights).sum(-1)

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """ids [..., G] -> codes [..., G * b] of +-codebook_scale (fp32)."""
        if ids.ndim < 1 or ids.shape[-1] != self.num_groups:
            raise ValueError(f"LFQ ids end in the group axis of size {self.num_groups}; got shape {list(ids.shape)}.")
        self.check_ids(ids)
        bits = (ids.long().unsqueeze(-1) & self._bit_weights) != 0  # [..., G, b]
        codes = torch.where(bits, self.codebook_scale, -self.codebook_scale).float()
        return codes.flatten(-2)  # [..., G * b]

    def ids_to_quantized(self, ids: Tensor) -> Tensor:
        """ids [..., G] -> [..., dim]."""
        codes = self.ids_to_codes(ids)
        if not isinstance(self.project_out, nn.Identity):
            codes = codes.to(self.project_out.weight.dtype)
        return self.project_out(codes)

    def entropy_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [N, G * b] -> (sample entropy [G], batch entropy [G] ("per_group") or [1] ("pooled")),
        with logits over each group's 2^b codes only."""
        n = x.shape[0]
        xg = x.float().unflatten(-1, (self.num_groups, self.bits_per_group))  # [N, G, b]
        codebook = self.group_codebook()  # [K, b]
        rows = max(1, _ENTROPY_CHUNK_ELEMENTS // (self.num_groups * self.codebook_size))
        sample = x.new_zeros(self.num_groups, dtype=torch.float32)
        prob_sum = x.new_zeros(self.num_groups, self.codebook_size, dtype=torch.float32)
        for start in range(0, n, rows):
            logits = 2 * torch.einsum("ngb,kb->ngk", xg[start : start + rows], codebook) / self.temperature  # [n, G, K]
            probs = logits.softmax(-1)
            sample = sample - (probs * logits.log_softmax(-1)).sum(-1).sum(0)
            prob_sum = prob_sum + probs.sum(0)
        avg = prob_sum / max(n, 1)  # [G, K]
        if self.batch_entropy == "pooled":
            avg = avg.mean(0, keepdim=True)  # [1, K]: one distribution over the shared group codebook
        batch = -(avg * torch.log(avg + self.eps)).sum(-1)  # [G] or [1]
        return sample / max(n, 1), batch

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"LFQ expects channel-last input [..., {self.dim}]; got shape {list(z.shape)}.")
        x = self.project_in(z)  # [..., G * b]
        q = torch.where(x > 0, self.codebook_scale, -self.codebook_scale).to(x.dtype)
        ids = self.codes_to_ids(q.detach())  # [..., G]

        losses: dict[str, Tensor] = {}
        metrics: dict[str, Tensor] = {}
        if self.training:
            if self.commitment_weight > 0:
                losses["commitment"] = self.commitment_weight * F.mse_loss(x, q.detach())
            if self.entropy_weight > 0:
                sample, batch = self.entropy_terms(x.reshape(-1, self.codebook_dim))
                penalty = self.sample_entropy_weight * sample.mean() - self.batch_entropy_weight * batch.mean()
                losses["entropy"] = self.entropy_weight * penalty
                metrics["sample_entropy"], metrics["batch_entropy"] = sample.mean().detach(), batch.mean().detach()
        with torch.no_grad():
            per_group = [usage_metrics(ids[..., g], self.codebook_size) for g in range(self.num_groups)]
            metrics["perplexity"] = torch.stack([m["perplexity"] for m in per_group]).mean()
            metrics["usage"] = torch.stack([m["usage"] for m in per_group]).mean()

        if x.requires_grad:
            q = x + (q - x).detach()  # straight-through
        return QuantizerOutput(quantized=self.project_out(q), ids=ids, losses=losses, metrics=metrics)
