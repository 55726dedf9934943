"""Selftok's official checkpoints and the SD3 VAE: the only place that knows the upstream layout.

Upstream (github.com/selftok-team/SelftokTokenizer, MIT) releases `.pth` files whose keys follow
its model zoo (`encoder.*` Q-Former, `model.*` MMDiT, `diffusion.*` schedule buffers) and names
its widths by model-zoo entries. `remap_state_dict` renames and drops keys; `from_official_config`
reads the official parameters (or a parity fixture's config.json) and the shapes; `load_vae`
fetches the SD3 VAE that the image API runs outside our weights.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
from torch import Tensor

from .config import SelftokConfig
from .model import Selftok


def load_vae(cfg: SelftokConfig):
    """The diffusers AutoencoderKL of cfg.vae_repo (subfolder "vae", in cfg.vae_dtype), in eval mode."""
    try:
        from diffusers import AutoencoderKL
    except ImportError as e:
        raise ImportError("Selftok's image API needs the SD3 VAE from diffusers: pip install diffusers.") from e
    return AutoencoderKL.from_pretrained(cfg.vae_repo, subfolder="vae", torch_dtype=getattr(torch, cfg.vae_dtype)).eval()


# Released widths of the upstream model-zoo names (upstream model_zoo.py); the fixture's config.json adds
# its own names under "zoo_entries_added" with the same fields.
_ENCODERS = {"Enc-Qformer-Uni-XL/2": dict(patch_size=2, hidden_size=64, num_heads=4, depth=16, query_dim=512, query_heads=8)}
_DECODERS = {
    "MMDiT_XL": dict(patch_size=2, depth=24, pos_embed_max_size=192),
    "MMDiT_XL_Renderer": dict(patch_size=2, depth=24, pos_embed_max_size=192),
}

# Official keys that inference does not use, dropped by the converter (everything else must be consumed):
DROPPED_KEY_PATTERNS = (
    r"diffusion\..*",  # sampler schedule buffers (timestep_map ...): our sampler computes the schedule
    r"encoder\.final_layer_norm2?\..*",  # norms applied only with pre_norm=True (released: False)
    r"encoder\.quantizer\.(continuous|steps|count)",  # training counters, mutated by every forward upstream
    r"encoder\.quantizer\._codebook\.(cluster_size_wo_react|timestep_p_over_c|tpc_initted)",  # entropy-regulariser state
    r"model\.y_embedder\..*",  # pooled-vector embedder; y is None at inference
)


def _dropped(key: str, cfg: SelftokConfig) -> bool:
    if any(re.fullmatch(p, key) for p in DROPPED_KEY_PATTERNS):
        return True
    last = cfg.decoder_depth - 1  # the last context block is modulated by the timestep: its position embedder is unused
    if key.startswith(f"model.joint_blocks.{last}.context_block.t_embedder."):
        return True
    return cfg.decoder == "renderer" and key == "model.pos_embed"  # the renderer has no noisy-image input


_RENAMES = (
    ("encoder.x_embedder.proj.", "encoder.patch_embed."),
    ("encoder.final_layer_norm3.", "post_norm."),
    ("encoder.quantizer._codebook.embed_avg", "quantizer.embed_sum"),  # EMA state kept for fine-tuning
    ("encoder.quantizer._codebook.embed", "quantizer.codebook"),
    ("encoder.quantizer._codebook.cluster_size", "quantizer.cluster_size"),
    ("encoder.quantizer._codebook.initted", "quantizer.initialized"),
    ("encoder.quantizer.", "quantizer."),
    ("model.x_embedder.proj.", "decoder.patch_embed."),
)


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: SelftokConfig) -> dict[str, Tensor]:
    """Official ImageTokenizer keys (encoder.*, model.*, diffusion.*) -> ours. Unknown keys pass through
    unchanged so that strict loading names them."""
    out: dict[str, Tensor] = {}
    body = "decoder." if cfg.decoder == "flow" else "renderer."
    for key, value in state_dict.items():
        if _dropped(key, cfg):
            continue
        new = key
        for old, rep in _RENAMES:
            if new.startswith(old):
                new = rep + new[len(old) :]
                break
        if new.startswith("model."):
            new = body + new[len("model.") :]
        if new in ("quantizer.codebook", "quantizer.embed_sum", "quantizer.cluster_size"):
            value = value[0]  # one codebook head: [1, C, ...] -> [C, ...]
        elif new == "quantizer.initialized":
            value = value.reshape(()).bool()
        out[new] = value
    return out


def _params_section(config: Mapping, state_dict: Mapping[str, Tensor]) -> Mapping:
    """Pick the official `params` that match the checkpoint: renderer checkpoints have model.mask_token."""
    is_renderer = "model.mask_token" in state_dict
    if "params" in config:
        return config["params"]
    for key in (("renderer_tokenizer", "tokenizer") if is_renderer else ("tokenizer",)):
        section = config.get(key)
        if isinstance(section, Mapping) and "params" in section:
            return section["params"]
    raise ValueError(
        "Selftok config has no tokenizer.params section (the official yml layout) "
        f"{'nor renderer_tokenizer.params ' if is_renderer else ''}; top-level keys: {sorted(config)}."
    )


def _csv(v) -> tuple[int, ...]:
    return tuple(int(s) for s in (v.split(",") if isinstance(v, str) else v))


def from_official_config(config: Mapping | None, state_dict: Mapping[str, Tensor], metadata: Mapping | None = None) -> SelftokConfig:
    """Official yml (tokenizer.params), the fixture's config.json, or None (released defaults) -> SelftokConfig.
    Widths, depths, token count and codebook size are read from the checkpoint's shapes."""
    sd = state_dict
    is_renderer = "model.mask_token" in sd
    if "encoder.query_tokens" not in sd or "encoder.quantizer._codebook.embed" not in sd:
        raise ValueError("This is not a Selftok checkpoint: it lacks encoder.query_tokens / encoder.quantizer._codebook.embed.")
    if not is_renderer and "model.x_embedder.proj.weight" not in sd:
        raise ValueError("Selftok checkpoint has neither the diffusion decoder (model.x_embedder) nor the renderer (model.mask_token).")
    k, query_width = sd["encoder.query_tokens"].shape[1:]
    codebook = sd["encoder.quantizer._codebook.embed"]
    enc_w = sd["encoder.x_embedder.proj.weight"]
    enc_depth = 1 + max(int(m.group(1)) for m in (re.match(r"encoder\.blocks\.(\d+)\.", s) for s in sd) if m)
    dec_depth = 1 + max(int(m.group(1)) for m in (re.match(r"model\.joint_blocks\.(\d+)\.", s) for s in sd) if m)
    token_dim = sd["model.context_embedder.weight"].shape[1]
    fields: dict[str, Any] = dict(
        num_tokens=int(k), query_width=int(query_width), codebook_size=int(codebook.shape[-2]), code_dim=int(codebook.shape[-1]),
        encoder_width=int(enc_w.shape[0]), latent_channels=int(enc_w.shape[1]), encoder_patch_size=int(enc_w.shape[-1]),
        encoder_depth=enc_depth, decoder_depth=dec_depth, token_dim=int(token_dim),
        encoder_pos_max=math.isqrt(sd["encoder.pos_embed"].shape[1]),
        decoder="renderer" if is_renderer else "flow",
    )
    if is_renderer:
        grid = math.isqrt(sd["model.positional_embedding"].shape[0])
        fields["renderer_shared_mask_token"] = sd["model.mask_token"].shape[1] == 1
        fields["context_see_xt"] = False
        fields["image_size"] = grid * 2 * 8
    else:
        fields["decoder_patch_size"] = int(sd["model.x_embedder.proj.weight"].shape[-1])
        if "model.pos_embed" in sd:
            fields["decoder_pos_max"] = math.isqrt(sd["model.pos_embed"].shape[1])
    fields["post_norm"] = "encoder.final_layer_norm3.weight" in sd
    if config is None:
        if k != 512:  # only the 512-token yml is published; assume one linear stage otherwise (see NOTES.md)
            fields.update(stages=(1000,), k_per_stage=(int(k),))
        return SelftokConfig(**fields)
    params = _params_section(config, sd)
    extra = config.get("zoo_entries_added", {}) if isinstance(config, Mapping) else {}
    enc_name, dec_name = params.get("enc"), params.get("model")
    enc = {**_ENCODERS, **extra}.get(enc_name)
    dec = {**_DECODERS, **extra}.get(dec_name)
    if enc is None or dec is None:
        raise ValueError(
            f"Unknown Selftok encoder/decoder names {enc_name!r} / {dec_name!r}; known: {sorted({**_ENCODERS, **_DECODERS})}."
        )
    enc_cfg = params.get("encoder_config", {})
    if enc_cfg.get("qformer_mode", "dual") != "dual" or enc_cfg.get("pre_norm") or enc_cfg.get("qk_norm") or enc_cfg.get("attn_mask"):
        raise ValueError(f"Selftok here supports the released encoder (dual mode, no pre_norm/qk_norm/attn_mask); got {dict(enc_cfg)}.")
    if not params.get("enable_enc_variable_size", True) or params.get("stages") is None:
        raise ValueError("Selftok here supports the released setting enable_enc_variable_size=True with a staged schedule (stages, k_per_stage).")
    if params.get("decoder_config", {}).get("time_adaln", "pos_emb") != "pos_emb":
        raise ValueError(f"Selftok here supports decoder_config.time_adaln='pos_emb'; got {params['decoder_config']['time_adaln']!r}.")
    fields.update(
        image_size=int(params["image_size"]),
        stages=_csv(params["stages"]),
        k_per_stage=_csv(params["k_per_stage"]),
        encoder_heads=int(enc["num_heads"]),
        query_heads=int(enc["query_heads"]),
        post_norm=bool(enc_cfg.get("post_norm", True)),
        context_see_xt=bool(params.get("context_see_xt", False)),
    )
    if int(params["k"]) != k:
        raise ValueError(f"Selftok config says k={params['k']} tokens but the checkpoint holds {k} query tokens.")
    return SelftokConfig(**fields)
