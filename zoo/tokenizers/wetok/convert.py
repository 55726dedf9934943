"""WeTok's official checkpoints: the only place that knows the upstream layout.

Upstream (github.com/zhuangshaobin/WeTok, Apache-2.0) releases Lightning `WeTok.ckpt` pickles whose
`state_dict` holds the live weights, their LitEma twins under `model_ema.*` (dot-less names) and the
training loss (LPIPS, PatchGAN). `remap_state_dict` takes the EMA weights under our names;
`from_official_config` reads the LightningCLI YAML (or a parity fixture's config.json) and checks it
against the tensor shapes, or reads the architecture from the shapes alone.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Mapping

import torch
from torch import Tensor

from .model import WeTok, WeTokConfig

# Official keys that inference does not use, dropped on purpose:
#   loss.*                      LPIPS (VGG16) and the PatchGAN discriminator of the training loss
#   model_ema.decay, model_ema.num_updates      LitEma bookkeeping
#   model_ema.loss*             EMA twins of the discriminator's parameters
#   encoder.* / decoder.*       the live (training) weights, when their EMA twin is present: the
#                               EMA copies are the inference weights (upstream decodes in ema_scope)
IGNORED_PREFIXES = ("loss.", "model_ema.loss")
IGNORED_KEYS = ("model_ema.decay", "model_ema.num_updates")
EMA_PREFIX = "model_ema."


def _our_parameter_names(cfg: WeTokConfig) -> list[str]:
    with torch.device("meta"):
        model = WeTok(cfg)
    return [name for name, _ in model.named_parameters()]


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: WeTokConfig) -> dict[str, Tensor]:
    """Official `VQModel.state_dict()` -> ours, taking the EMA weights.

    Each parameter `encoder.down.0.block.0.conv1.weight` is read from its LitEma twin
    `model_ema.encoderdown0block0conv1weight` (the name with the dots removed, mapped from our own
    parameter names as LitEma builds it). Where a twin is missing, the live weight is used and a
    warning says how many. Keys in IGNORED_PREFIXES / IGNORED_KEYS are dropped; any other key is
    passed through so that strict loading names it.
    """
    names = _our_parameter_names(cfg)
    ema_name = {name: EMA_PREFIX + name.replace(".", "") for name in names}
    if len(set(ema_name.values())) != len(names):  # dot-stripped names must stay unique
        raise ValueError("WeTok parameter names collide once their dots are removed; cannot map the EMA weights.")
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    live_fallback = []
    for name in names:
        if ema_name[name] in state_dict:
            out[name] = state_dict[ema_name[name]]
            used.add(ema_name[name])
            used.add(name)  # the live twin is superseded
        elif name in state_dict:
            out[name] = state_dict[name]
            used.add(name)
            live_fallback.append(name)
    if live_fallback:
        tops = sorted({n.split(".")[0] for n in live_fallback})
        warnings.warn(
            f"WeTok checkpoint has no EMA weights (model_ema.*) for {len(live_fallback)} of {len(names)} parameters "
            f"(in {', '.join(tops)}); using the live weights for those. Upstream decodes with the EMA weights.",
            stacklevel=2,
        )
    for key, value in state_dict.items():
        if key in used or key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES):
            continue
        out[key] = value  # unknown (incl. EMA twins of modules we lack): strict loading will name it
    return out


def _model_sections(config: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """All (name, init_args) model sections of an official config or a fixture config.json."""
    if "ddconfig" in config:  # the init_args mapping itself
        return [("init_args", config)]
    sections = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            args = value.get("init_args", value.get("params"))
            if isinstance(args, Mapping) and "ddconfig" in args:
                sections.append((key, args))
    return sections


def _infer_from_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Read the architecture from tensor shapes (live or EMA keys): ch, ch_mult, blocks, z, GD."""

    def get(name: str) -> Tensor | None:
        if name in state_dict:
            return state_dict[name]
        return state_dict.get(EMA_PREFIX + name.replace(".", ""))

    conv_in = get("encoder.conv_in.weight")
    conv_out = get("encoder.conv_out.weight")
    dec_in = get("decoder.conv_in.weight")
    if conv_in is None or conv_out is None or dec_in is None:
        raise ValueError(
            "This checkpoint is not a WeTok VQModel state dict: it lacks encoder.conv_in.weight, "
            "encoder.conv_out.weight or decoder.conv_in.weight (live or model_ema.* twins)."
        )
    ch = int(conv_in.shape[0])
    levels, blocks = set(), set()
    pattern = re.compile(r"^(?:encoder\.down\.(\d+)\.block\.(\d+)\.conv1\.weight|model_ema\.encoderdown(\d+)block(\d+)conv1weight)$")
    for key in state_dict:
        m = pattern.match(key)
        if m:
            lv, bl = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
            levels.add(int(lv))
            blocks.add(int(bl))
    if not levels:
        raise ValueError("This checkpoint has no encoder.down.*.block.*.conv1.weight keys; it is not a WeTok VQModel.")
    ch_mult = []
    for lv in range(max(levels) + 1):
        w = get(f"encoder.down.{lv}.block.0.conv1.weight")
        if w is None or int(w.shape[0]) % ch:
            raise ValueError(f"WeTok checkpoint: encoder level {lv} is missing or has a width that is not a multiple of {ch}.")
        ch_mult.append(int(w.shape[0]) // ch)
    z = int(conv_out.shape[0])
    dec_in_ch = int(dec_in.shape[1])
    if dec_in_ch not in (z, 2 * z):
        raise ValueError(f"WeTok checkpoint: decoder.conv_in takes {dec_in_ch} channels; expected {z} (plain) or {2 * z} (GD).")
    return {
        "ch": ch,
        "ch_mult": tuple(ch_mult),
        "num_res_blocks": max(blocks) + 1,
        "z_channels": z,
        "generative_decoder": dec_in_ch == 2 * z,
    }


def _config_from_section(args: Mapping[str, Any]) -> dict[str, Any]:
    dd = args["ddconfig"]
    for key, want in (("in_channels", 3), ("out_ch", 3)):
        if int(dd.get(key, want)) != want:
            raise ValueError(f"WeTok takes RGB images: ddconfig.{key} must be {want}; got {dd[key]}.")
    if dd.get("double_z", False):
        raise ValueError("WeTok's encoder has double_z: false; a config with double_z: true is not a WeTok model.")
    if args.get("token_factorization", False):
        raise ValueError(
            "token_factorization: true splits ids for the AR stage; zoo's WeTok keeps one id per group. Use the "
            "tokenizer's inference config (token_factorization: false)."
        )
    n_embed = int(args["n_embed"])
    bits = int(round(math.log2(n_embed)))
    if 2**bits != n_embed:
        raise ValueError(f"WeTok's n_embed must be a power of two (2^bits per group); got {n_embed}.")
    z = int(dd["z_channels"])
    if int(args.get("embed_dim", z)) != z:
        raise ValueError(f"WeTok needs embed_dim == z_channels; got embed_dim={args['embed_dim']}, z_channels={z}.")
    return {
        "ch": int(dd["ch"]),
        "ch_mult": tuple(int(m) for m in dd["ch_mult"]),
        "num_res_blocks": int(dd["num_res_blocks"]),
        "z_channels": z,
        "num_groups": int(args.get("num_codebooks", 1)),
        "bits_per_group": bits,
        "generative_decoder": bool(args.get("gan_decoder", False)),
        "sample_entropy_weight": float(args.get("sample_minimization_weight", 1.0)),
        "codebook_entropy_weight": float(args.get("batch_maximization_weight", 1.0)),
    }


def from_official_config(config: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor], metadata=None) -> WeTokConfig:
    """Official config (LightningCLI YAML `model: {class_path, init_args}`, the bare `init_args`, or the
    parity fixture's config.json with `model` and `model_gd`) + checkpoint -> WeTokConfig.

    Where the config holds several model sections, the one whose architecture matches the
    checkpoint's shapes is chosen. Without a config, the architecture is read from the shapes and
    the groups follow the released checkpoints: 8 bits per group (n_embed 256)."""
    found = _infer_from_state_dict(state_dict)
    if config is None:
        z = found["z_channels"]
        if z % 8:
            raise ValueError(
                f"Without a config, WeTok assumes 8 bits per group (as every release); z_channels={z} is not a multiple "
                "of 8. Pass the official config file."
            )
        return WeTokConfig(**found, num_groups=z // 8, bits_per_group=8)
    sections = _model_sections(config)
    if not sections:
        raise ValueError(
            "The WeTok config has no model section: expected `model: {class_path, init_args: {ddconfig, n_embed, "
            "num_codebooks, ...}}` (official YAML), the init_args mapping itself, or the fixture's config.json."
        )
    candidates = []
    for name, args in sections:
        fields = _config_from_section(args)
        if all(fields[k] == v for k, v in found.items()):
            candidates.append((name, fields))
    if not candidates:
        described = ", ".join(
            f"{name}: {({k: _config_from_section(a)[k] for k in found})}" for name, a in sections
        )
        raise ValueError(
            f"No model section of the WeTok config matches the checkpoint (checkpoint: {found}; config: {described})."
        )
    return WeTokConfig(**candidates[0][1])
