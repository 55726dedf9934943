"""Exponential moving average of weights (Polyak averaging), as most tokenizer trainings keep.

`ema = EMA(model, decay=0.999)`; after each optimiser step `ema.update(model)`. Shadows are kept in
fp32 beside the parameters they follow (sharded like them under FSDP2, where each rank averages its
own shard). `state_dict()` gathers full tensors for checkpoints; `load_state_dict` puts them back,
re-sharded where needed. `warmup` ramps the decay as min(decay, (1 + n) / (10 + n)) so early
averages are not dominated by the random init.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _full(t: Tensor) -> Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1); got {decay}.")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        # only trainable parameters move; frozen ones equal the model's
        self.shadow: dict[str, Tensor] = {
            name: p.detach().clone().float() for name, p in _named_params(model) if p.requires_grad
        }

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        params = dict(_named_params(model))
        names = list(self.shadow)
        shadows = [self.shadow[n] for n in names]
        current = [params[n].detach().float() for n in names]
        if shadows:
            torch._foreach_lerp_(shadows, current, 1.0 - d)
        self.num_updates += 1

    def state_dict(self) -> dict:
        """Full (gathered) tensors on CPU; a collective under FSDP2: call on every rank."""
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": {n: _full(t).detach().cpu() for n, t in self.shadow.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        extra = sorted(set(state["shadow"]) - set(self.shadow))
        if missing or extra:
            raise ValueError(
                f"EMA state does not match the model: missing {missing[:5]}, unexpected {extra[:5]} "
                "(was the checkpoint written with other frozen parts?)."
            )
        self.num_updates = int(state["num_updates"])
        for n, t in self.shadow.items():
            full = state["shadow"][n]
            if hasattr(t, "device_mesh"):  # DTensor shard under FSDP2: keep our slice
                from torch.distributed.tensor import distribute_tensor

                t.copy_(distribute_tensor(full.to(t.device_mesh.device_type), t.device_mesh, t.placements))
            else:
                t.copy_(full)

    def averaged_state_dict(self, full_state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A full model state dict with the averaged weights in place of the trained ones."""
        shadow = self.state_dict()["shadow"]
        return {k: (shadow[k].to(v.dtype) if k in shadow else v) for k, v in full_state.items()}


def _named_params(model: nn.Module):
    from zoo.train.distributed import unwrap

    return unwrap(model).named_parameters()
