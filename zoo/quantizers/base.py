"""Quantizer contract: `forward(z) -> QuantizerOutput`, with `codes_to_ids` / `ids_to_codes`.

Every scheme in this package (VQ, RVQ, FSQ, LFQ, multi-scale) keeps it, so a tokenizer can swap
one for another and the tests can run one battery over all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from zoo.runtime import fp32


@dataclass
class QuantizerOutput:
    """quantized: same shape as the input (straight-through in training); ids: int64 indices;
    losses: named scalar losses (already weighted); metrics: named scalars for logging."""

    quantized: Tensor
    ids: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)


class Quantizer(nn.Module):
    """Base of the zoo quantizers. Inputs are channel-last `[..., D]` unless a subclass says otherwise.

    The methods that turn continuous input into ids (`forward`, `codes_to_ids`, `quantize`) always run
    in fp32, also inside a bf16 / fp16 autocast: distances, argmin, rounding and signs decide the ids."""

    codebook_size: int = 0
    num_codebooks: int = 1
    _fp32_methods = ("forward", "codes_to_ids", "quantize")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls._fp32_methods:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "__zoo_fp32__", False):
                setattr(cls, name, fp32(fn))

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not map codes to ids")

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not map ids to codes")

    def ids_to_quantized(self, ids: Tensor) -> Tensor:
        """ids -> the tensor the decoder consumes (codes, then any output projection)."""
        return self.ids_to_codes(ids)

    def check_ids(self, ids: Tensor) -> None:
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.codebook_size):
            raise ValueError(
                f"ids must lie in [0, {self.codebook_size - 1}]; got [{int(ids.min())}, {int(ids.max())}]."
            )


class IdentityQuantizer(Quantizer):
    """No quantization: passes latents through. For plumbing tests and continuous baselines.

    ids are the argmax channel, so that the contract (integer ids within a codebook) still holds.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.codebook_size = dim

    def forward(self, z: Tensor) -> QuantizerOutput:  # z: [..., D]
        return QuantizerOutput(quantized=z, ids=z.argmax(-1))

    def ids_to_codes(self, ids: Tensor) -> Tensor:  # ids: [...] -> one-hot [..., D]
        self.check_ids(ids)
        return torch.nn.functional.one_hot(ids, self.dim).float()

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        return codes.argmax(-1)
