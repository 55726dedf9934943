"""Family-specific training passes, chosen by family name (`Tokenizer.family`), never by `hasattr`.

`train_autoencoder.py` trains every family through the Tokenizer contract (`forward -> TokenizerOutput`).
A few families have a training pass beyond it; `HOOKS` names them per family:

    set_continuous   a stage switch that bypasses the quantiser (`Stage.continuous`): VAT's first,
                     VAE stage; One-D-Piece's warm-up on unquantised latents
    proxy_forward    One-D-Piece / TiTok's stage 1: forward on a teacher's proxy codes
                     (`proxy_ids`), optionally with the teacher's decoder (`proxy_decoder`)
    proxy_classes    how many proxy codes the model predicts (the teacher must give as many)

A family not in `HOOKS` has none of them; asking for one is an error that names the families that have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor, nn


@dataclass(frozen=True)
class TrainingHooks:
    set_continuous: Callable[[nn.Module, bool], None] | None = None  # (unwrapped model, flag)
    # (model, possibly DDP-wrapped; x; proxy_ids or None; teacher decoder or None; render) -> TokenizerOutput
    proxy_forward: Callable[..., object] | None = None
    proxy_classes: Callable[[nn.Module], int] | None = None  # unwrapped model -> number of proxy codes


def _set_continuous(model: nn.Module, flag: bool) -> None:
    model.set_continuous(flag)


def _one_d_piece_proxy_forward(model, x: Tensor, proxy_ids: Tensor | None, proxy_decoder, render: bool):
    return model(x, proxy_ids=proxy_ids, proxy_decoder=proxy_decoder, render=render)


HOOKS: dict[str, TrainingHooks] = {
    "vat": TrainingHooks(set_continuous=_set_continuous),
    "one_d_piece": TrainingHooks(set_continuous=_set_continuous, proxy_forward=_one_d_piece_proxy_forward,
                                 proxy_classes=lambda model: model.cfg.proxy_codebook_size),
}


def hooks(family: str) -> TrainingHooks:
    """The training hooks of a family (an empty TrainingHooks for a family without any)."""
    return HOOKS.get(family, TrainingHooks())


def families_with(hook: str) -> list[str]:
    return sorted(f for f, h in HOOKS.items() if getattr(h, hook) is not None)


__all__ = ["TrainingHooks", "HOOKS", "hooks", "families_with"]
