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
    flow_forward        (model, x, *, t, noise, **extra) -> zoo.api.FlowOutput: the rectified-flow pass that
                        train_flow_decoder.py trains (FlexTok, Selftok)
    flow_noise_shape    (model, x) -> the shape of the flow's noise (a latent's); None: shaped like x
    fsdp_forward_methods  "child.method" names of the methods of a top-level child (one FSDP2 shard unit) that a
                        pass calls outside that child's forward; under FSDP2 they gather its parameters as forward
                        does (`register_fsdp_forward_method`): FlexTok's decoder.condition / uncondition, Selftok's
                        decoder.embed_context, VAT's decoder.triplane / logits (its decoder has no forward)

`model` is the unwrapped tokenizer; the programs compute each loss, passes included, as the wrapped model's forward
(`zoo.train.distributed.loss_forward`), so that DDP and FSDP2 see it. A family not in `HOOKS` has none of them;
asking for one is an error that names the families that have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from zoo.tokenizers.flextok import FlexTok
from zoo.tokenizers.selftok import Selftok
from zoo.train import flextok, one_d_piece, vat


@dataclass(frozen=True)
class TrainingHooks:
    continuous_forward: Callable[..., object] | None = None
    proxy_forward: Callable[..., object] | None = None
    proxy_classes: Callable[[nn.Module], int] | None = None
    repa_encoder: Callable[[nn.Module], nn.Module | None] | None = None
    flow_forward: Callable[..., object] | None = None
    flow_noise_shape: Callable[[nn.Module, object], tuple[int, ...]] | None = None
    fsdp_forward_methods: tuple[str, ...] = ()


HOOKS: dict[str, TrainingHooks] = {
    "vat": TrainingHooks(continuous_forward=vat.continuous_forward,
                         fsdp_forward_methods=("decoder.triplane", "decoder.logits")),
    "one_d_piece": TrainingHooks(continuous_forward=one_d_piece.continuous_forward,
                                 proxy_forward=one_d_piece.training_forward,
                                 proxy_classes=lambda model: model.cfg.proxy_codebook_size),
    "flextok": TrainingHooks(repa_encoder=flextok.repa_encoder, flow_forward=FlexTok.flow_forward,
                             flow_noise_shape=FlexTok.flow_noise_shape,
                             fsdp_forward_methods=("decoder.condition", "decoder.uncondition")),
    "selftok": TrainingHooks(flow_forward=Selftok.flow_forward, flow_noise_shape=Selftok.flow_noise_shape,
                             fsdp_forward_methods=("decoder.embed_context",)),
}


def hooks(family: str) -> TrainingHooks:
    """The training hooks of a family (an empty TrainingHooks for a family without any)."""
    return HOOKS.get(family, TrainingHooks())


def families_with(hook: str) -> list[str]:
    return sorted(f for f, h in HOOKS.items() if getattr(h, hook))


__all__ = ["TrainingHooks", "HOOKS", "hooks", "families_with"]
