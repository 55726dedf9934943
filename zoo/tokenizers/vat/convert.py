"""VAT checkpoints: there is no official layout (no code or weights were released), only ours.

`remap_state_dict` strips the prefixes training wrappers add; `from_official_config` reads our own
config.json, since no official config format exists.
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor

from .model import VAT, VATConfig

# Prefixes that training wrappers put in front of our keys (DDP, torch.compile, our EMA/export).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Training-only entries a raw training checkpoint may carry next to the weights: none today.
TRAINING_ONLY_PREFIXES: tuple[str, ...] = ()


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: VATConfig | None = None) -> dict[str, Tensor]:
    """A VAT state dict in our layout (possibly with DDP / torch.compile prefixes) -> ours.

    VAT released no weights, so there is no official layout to rename from: this only strips wrapper
    prefixes. Any other unknown key is kept, so that strict loading names it."""
    out = {}
    for k, v in state_dict.items():
        for p in _WRAPPER_PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        if TRAINING_ONLY_PREFIXES and k.startswith(TRAINING_ONLY_PREFIXES):
            continue
        out[k] = v
    return out


def from_official_config(config: Mapping | None, state_dict: Mapping[str, Tensor] | None = None,
                         metadata: Mapping[str, str] | None = None) -> VATConfig:
    """Our config.json ({"family": "vat", "config": {...}}) or its bare "config" mapping -> VATConfig.

    VAT has no official config format (no code was released); None is an error."""
    if config is None:
        raise ValueError(
            "VAT has no official release, so a checkpoint does not carry its architecture: pass the "
            "config.json that zoo's training wrote (or its 'config' mapping) as config=."
        )
    data = dict(config)
    if "config" in data and isinstance(data["config"], Mapping):
        if data.get("family", "vat") != "vat":
            raise ValueError(f"This config.json is for family {data['family']!r}, not 'vat'.")
        data = dict(data["config"])
    return VAT.config_from_dict(data)
