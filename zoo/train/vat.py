"""VAT's first training stage (arXiv 2412.02202): a continuous VAE, the quantiser bypassed, made of the model's parts.

`continuous_forward(model, x, queries, occupancy)` is `VAT.forward` with the decoder reading the posterior sample z
instead of its quantisation. The quantiser still runs, frozen (eval mode, no gradients, no codebook statistics), so
that the output carries tokens to log; its losses are not added. Then the paper fine-tunes with the quantiser
(`VAT.forward`); `train_autoencoder.py` switches by a stage's `continuous: true`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.api import TokenizerOutput
from zoo.tokenizers.vat import VAT


def continuous_forward(model: VAT, x: Tensor, queries: Tensor | None = None, occupancy: Tensor | None = None,
                       generator: torch.Generator | None = None) -> TokenizerOutput:
    """x: points [B, N, C]; queries [B, Q, 3]; occupancy [B, Q] (as VAT.forward) -> losses kl (+ occupancy)."""
    points, queries = model.training_inputs(x, queries, occupancy)
    post = model.bottleneck(model.encoder(points), generator=generator)
    q = _quantize_frozen(model.quantizer, post.sample.detach())
    return model.occupancy_output(post.sample, q, queries, occupancy, {"kl": model.cfg.kl_weight * post.kl})


def _quantize_frozen(quantizer: nn.Module, z: Tensor):
    """Quantise without touching training state (no codebook statistics, no gradients)."""
    was = quantizer.training
    quantizer.eval()
    try:
        with torch.no_grad():
            return quantizer(z)
    finally:
        quantizer.train(was)


__all__ = ["continuous_forward"]
