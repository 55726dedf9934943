"""Family-specific training passes, chosen by family name (`Tokenizer.family`), never by `hasattr`.

The programs train every family through the Tokenizer contract (`forward -> TokenizerOutput`, or `flow_forward`).
A few families have a training pass beyond it, written in `zoo/train/<family>.py` from the model's parts;
`HOOKS` names them per family:

    continuous_forward  (model, x, **inputs) -> TokenizerOutput with the quantiser bypassed (`Stage.continuous`):
                        VAT's first, VAE stage; One-D-Piece's warm-up on unquantised latents
    proxy_forward       (model, x, *, proxy_ids, proxy_decoder, render, continuous) -> TokenizerOutput:
                        One-D-Piece / TiTok's stage 1 on a teacher's proxy codes
    proxy_classes       model -> how many proxy codes the model predicts (the teacher must give as many)
    repa_encoder        model -> the frozen REPA encoder whose features `flow_forward(repa_target=)` aligns to
                        (None when the model's config has REPA off): FlexTok

`model` is the unwrapped tokenizer; the programs call the passes through `zoo.train.distributed.forward_with`,
so that DDP and FSDP2 see them as the model's forward. A family not in `HOOKS` has none of them; asking for one
is an error that names the families that have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from zoo.train import flextok, one_d_piece, vat


@dataclass(frozen=True)
class TrainingHooks:
    continuous_forward: Callable[..., object] | None = None
    proxy_forward: Callable[..., object] | None = None
    proxy_classes: Callable[[nn.Module], int] | None = None
    repa_encoder: Callable[[nn.Module], nn.Module | None] | None = None


HOOKS: dict[str, TrainingHooks] = {
    "vat": TrainingHooks(continuous_forward=vat.continuous_forward),
    "one_d_piece": TrainingHooks(continuous_forward=one_d_piece.continuous_forward,
                                 proxy_forward=one_d_piece.training_forward,
                                 proxy_classes=lambda model: model.cfg.proxy_codebook_size),
    "flextok": TrainingHooks(repa_encoder=flextok.repa_encoder),
}


def hooks(family: str) -> TrainingHooks:
    """The training hooks of a family (an empty TrainingHooks for a family without any)."""
    return HOOKS.get(family, TrainingHooks())


def families_with(hook: str) -> list[str]:
    return sorted(f for f, h in HOOKS.items() if getattr(h, hook) is not None)


__all__ = ["TrainingHooks", "HOOKS", "hooks", "families_with"]
