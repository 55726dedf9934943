"""FlexTok's official checkpoints and VAEs: the only place that knows the upstream layouts.

Upstream (github.com/apple/ml-flextok) saves `vae.vae.*`, `encoder.module_dict.*` and
`decoder.module_dict.*` keys and writes its config into the safetensors header (as Python-literal
strings). `remap_state_dict` renames the keys; `from_official_config` reads the header (or a
config.json) and the shapes. The released diffusers VAEs are read here: as standalone models
(`load_released_vae`: config.json with the scaling factor + diffusion_pytorch_model.safetensors, whose
keys are already ours), as weights for `vae_init` (`load_vae_weights`), and, when a checkpoint leaves it
out, for their scaling factor.
"""

from __future__ import annotations

import ast
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import Tensor, nn

from .model import FlexTok, FlexTokConfig
from .vae import FlexTokVAE, FlexTokVAEConfig


def vae_config_from_diffusers(config: Mapping[str, Any], source: str = "config.json") -> FlexTokVAEConfig:
    """A released VAE's diffusers config.json -> FlexTokVAEConfig (sizes and scaling factor). A layout our VAE
    does not build, or a missing or unusable scaling factor, is an error naming the field."""
    if not isinstance(config, Mapping) or config.get("_class_name") != "AutoencoderKL":
        got = config.get("_class_name") if isinstance(config, Mapping) else type(config).__name__
        raise ValueError(f"{source} is not a diffusers AutoencoderKL config (its _class_name is {got!r}).")
    widths = tuple(config.get("block_out_channels") or ())
    fixed = {"in_channels": 3, "out_channels": 3, "act_fn": "silu", "mid_block_add_attention": True,
             "down_block_types": ["DownEncoderBlock2D"] * len(widths), "up_block_types": ["UpDecoderBlock2D"] * len(widths)}
    for key, want in fixed.items():
        got = config.get(key, want)
        if (list(got) if isinstance(want, list) else got) != want:
            raise ValueError(f"{source}: {key}={got!r}; the FlexTok VAE is built with {want!r}.")
    if not widths:
        raise ValueError(f"{source} gives no block_out_channels; the FlexTok VAE is built from them.")
    for key in ("shift_factor", "latents_mean", "latents_std"):
        if config.get(key) not in (None, 0, 0.0):
            raise ValueError(f"{source}: {key}={config[key]!r}; the FlexTok VAE scales its latents by scaling_factor only.")
    scaling = config.get("scaling_factor")
    if isinstance(scaling, bool) or not isinstance(scaling, (int, float)) or not math.isfinite(scaling) or scaling <= 0:
        raise ValueError(f"{source} gives no usable scaling_factor (got {scaling!r}); the latents' scale is part of the "
                         "model, so it must be the released positive number.")
    return FlexTokVAEConfig(
        latent_channels=int(config.get("latent_channels", 4)),
        block_out_channels=tuple(int(c) for c in widths),
        layers_per_block=int(config.get("layers_per_block", 1)),
        norm_num_groups=int(config.get("norm_num_groups", 32)),
        use_quant_conv=bool(config.get("use_quant_conv", True)),
        use_post_quant_conv=bool(config.get("use_post_quant_conv", True)),
        scaling_factor=float(scaling),
    )


def load_released_vae(config_file: str | os.PathLike, weights_file: str | os.PathLike,
                      expected: FlexTokVAEConfig | None = None) -> FlexTokVAE:
    """A released VAE (its diffusers config.json and weights file) -> FlexTokVAE in eval mode, fp32, CPU.

    Sizes and scaling factor come from config.json; `expected` (a catalogue entry's config) fixes the latent
    channels. The weights are checked key by key (zoo.hub.check_state_dict) before they are loaded."""
    from zoo import hub

    cfg = vae_config_from_diffusers(hub.read_config_file(config_file), source=str(config_file))
    if expected is not None and cfg.latent_channels != expected.latent_channels:
        raise ValueError(f"{config_file} describes a VAE with {cfg.latent_channels} latent channels; this entry has "
                         f"{expected.latent_channels}. The file belongs to another VAE.")
    state, _ = hub.read_checkpoint(weights_file)
    model = FlexTokVAE(cfg)
    hub.load_state_dict_strict(model.vae, state, source=f"VAE weights {weights_file}")
    return model.float().eval()


def _vae_entry(source: str) -> str | None:
    """The catalogue name of a standalone VAE given by name (flextok-vae-c4) or by its hub id."""
    from zoo import registry

    for name, (_, v) in registry.catalogue().items():
        if v.kind == "vae" and v.pretrained is not None and source in (name, v.pretrained.hub_id):
            return name
    return None


def released_vae(source: str) -> FlexTokVAE:
    """A released VAE by catalogue name (flextok-vae-c4), hub id (EPFL-VILAB/flextok_vae_c4, read as that
    catalogue entry when it is one) or local diffusers folder (config.json + diffusion_pytorch_model.safetensors)."""
    from zoo import hub

    name = _vae_entry(source)
    if name is not None or Path(source).is_dir():
        model = hub.load(name or source)
        if not isinstance(model, FlexTokVAE):
            raise ValueError(f"{source} holds a {type(model).__name__}, not a diffusers AutoencoderKL VAE.")
        return model
    from huggingface_hub import hf_hub_download

    files = [hf_hub_download(source, f) for f in ("config.json", FlexTokVAE.released_weights)]
    return load_released_vae(*files)


def load_vae_weights(vae: nn.Module, source: str, scaling_factor: float | None = None) -> None:
    """Fill our VAE with a released VAE's weights (catalogue name, hub id or diffusers folder; see
    `released_vae`), strictly; when given, scaling_factor must equal the released VAE's (the latents' scale
    is part of the model)."""
    from zoo import hub

    where = f"FlexTok vae_init={source!r}"
    try:
        donor = released_vae(source)
    except Exception as e:
        raise ValueError(f"{where}: could not load a released VAE from it ({type(e).__name__}: {e}).") from e
    channels = vae.config.latent_channels
    if donor.latent_channels != channels:
        raise ValueError(f"{where} has {donor.latent_channels} latent channels; the config says vae_latent_channels="
                         f"{channels}. Set vae_latent_channels: {donor.latent_channels} in the recipe, or name another VAE.")
    released = donor.scaling_factor
    if scaling_factor is not None and abs(released - scaling_factor) > 1e-6:
        raise ValueError(f"{where} has scaling_factor {released}; the config says vae_scaling_factor="
                         f"{scaling_factor}. Set vae_scaling_factor: {released} in the recipe.")
    state = donor.vae.state_dict()
    hub.check_state_dict(vae, state, source=where)
    vae.load_state_dict(state)


# Official prefixes -> ours. Checked in order; the first match renames.
_PREFIXES = (
    ("vae.vae.", "vae."),
    ("encoder.module_dict.enc_patch_emb.patch_proj.", "encoder.patch_emb."),
    ("encoder.module_dict.enc_transformer.blocks.", "encoder.blocks."),
    ("encoder.module_dict.enc_to_latents.proj.", "encoder.to_latents."),
    ("decoder.module_dict.dec_from_latents.proj.", "decoder.from_latents."),
    ("decoder.module_dict.dec_noise_patch_emb.patch_proj.", "decoder.patch_emb."),
    ("decoder.module_dict.dec_time_embedder.mlp.", "decoder.time_embedder.mlp."),
    ("decoder.module_dict.dec_transformer.blocks.", "decoder.blocks."),
    ("decoder.module_dict.dec_to_patches.adaLN_modulation.", "decoder.head_adaLN."),
    ("decoder.module_dict.dec_to_patches.proj.", "decoder.head."),
)
# Whole tensors whose layout differs: official name -> (our name, official layout -> ours).
_TENSORS: dict[str, tuple[str, Callable[[Tensor], Tensor]]] = {
    "encoder.module_dict.enc_posemb_module.posembs": ("encoder.posemb", lambda t: t[0]),  # [1, D, G, G] -> [D, G, G]
    "encoder.module_dict.enc_register_module.registers": ("encoder.registers", lambda t: t),
    "decoder.module_dict.dec_patches_posemb_module.posembs": ("decoder.posemb", lambda t: t[0]),
    "decoder.module_dict.dec_registers_posemb_module.posembs": ("decoder.register_posemb", lambda t: t[0, 0].t()),  # [1, 1, D, R] -> [R, D]
    "decoder.module_dict.dec_nested_dropout.dropout_mask_token": ("decoder.nested_dropout.mask_token", lambda t: t),
    "decoder.module_dict.dec_latent_dropout.nullcond": ("decoder.null_cond", lambda t: t),
}
# Training-only entries that inference does not use (dropped on purpose; anything else unknown
# keeps its official name and makes strict loading fail):
#   vae.logvar: StableDiffusionVAE's learnable KL log-variance (learnable_logvar=True), a loss weight.
TRAINING_ONLY_KEYS = ("vae.logvar",)


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: FlexTokConfig | None = None) -> dict[str, Tensor]:
    """Official FlexTok state dict (`vae.vae.*`, `encoder.module_dict.*`, `decoder.module_dict.*`) -> ours."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key in TRAINING_ONLY_KEYS:
            continue
        if key in _TENSORS:
            name, fn = _TENSORS[key]
            out[name] = fn(value)
            continue
        for old, new in _PREFIXES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value  # unknown: left as is so that strict loading names it
    return out


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _official_sections(config: Mapping | None, metadata: Mapping[str, str] | None) -> tuple[dict, dict]:
    """-> (official hydra config {vae, encoder, decoder, regularizer, ...}, diffusers VAE config or {})."""
    vae_cfg: dict = {}
    off: dict = {}
    if config:
        if config.get("_class_name") == "AutoencoderKL":  # the VAE repo's diffusers config.json
            vae_cfg = dict(config)
        elif isinstance(config.get("config"), Mapping) and "encoder" in config["config"]:  # parity fixture
            off = dict(config["config"])
            vae_cfg = dict(config.get("vae_autoencoderkl_config") or {})
        elif "encoder" in config and "decoder" in config:  # the released config.json (hydra dict)
            off = dict(config)
        else:
            raise ValueError(
                "FlexTok config not recognised: expected the released config.json (with 'encoder', 'decoder', "
                "'vae', 'regularizer'), a parity fixture's config.json (with 'config'), or the VAE's diffusers "
                f"config.json (_class_name AutoencoderKL); got top-level keys {sorted(config)[:12]}."
            )
    if not off and metadata:  # the config FlexTok embeds in its safetensors header
        off = {k: _literal(v) for k, v in metadata.items() if k in ("vae", "encoder", "decoder", "regularizer", "pipeline")}
    return off, vae_cfg


def _modules(off: Mapping, part: str) -> dict:
    return dict((off.get(part) or {}).get("module_dict") or {})


def from_official_config(config: Mapping | None, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> FlexTokConfig:
    """Official config (released hydra config.json, the safetensors header of model.safetensors, or a
    parity fixture's config.json; optionally the VAE's diffusers config.json) + state dict -> FlexTokConfig.

    Sizes come from the tensor shapes; what shapes cannot tell (head dims, FSQ levels, VAE scaling
    factor, GroupNorm groups, max timestep) comes from the config."""
    off, vae_cfg = _official_sections(config, metadata)
    sd = state_dict
    enc, dec = _modules(off, "encoder"), _modules(off, "decoder")

    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise ValueError(f"This is not a FlexTok checkpoint: it has no {key!r}.")
        return tuple(sd[key].shape)

    def depth(prefix: str) -> int:
        ids = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
        return max(ids) + 1 if ids else 0

    e = "encoder.module_dict."
    d = "decoder.module_dict."
    enc_dim, patch_in = shape(e + "enc_patch_emb.patch_proj.weight")
    dec_dim = shape(d + "dec_noise_patch_emb.patch_proj.weight")[0]
    num_registers, _ = shape(e + "enc_register_module.registers")
    grid = shape(e + "enc_posemb_module.posembs")[-1]
    n_levels = shape(e + "enc_to_latents.proj.weight")[0]
    enc_tf, dec_tf = enc.get("enc_transformer", {}), dec.get("dec_transformer", {})
    levels = tuple((off.get("regularizer") or {}).get("levels") or ((8, 8, 8, 5, 5, 5) if n_levels == 6 else ()))
    if len(levels) != n_levels:
        raise ValueError(f"FlexTok FSQ levels {list(levels)} do not match the checkpoint's {n_levels} latent channels; pass the official config.")
    # VAE: sizes from shapes; groups and scaling factor from the configs.
    v = "vae.vae."
    n_blocks = depth(v + "encoder.down_blocks.")
    block_out = tuple(shape(f"{v}encoder.down_blocks.{i}.resnets.0.conv1.weight")[0] for i in range(n_blocks))
    latent_c = shape(v + "decoder.conv_in.weight")[1]
    patch = int(round(math.sqrt(patch_in // latent_c)))
    off_vae = off.get("vae") or {}
    scaling = off_vae.get("scaling_factor") or vae_cfg.get("scaling_factor")
    if scaling is None:
        scaling = _hub_vae_scaling_factor(off_vae.get("hf_hub_path"))
    groups = vae_cfg.get("norm_num_groups")
    if groups is None:  # not in the FlexTok header; the released VAEs (SDXL layout) use 32
        if any(c % 32 for c in block_out):
            raise ValueError(
                f"The VAE's GroupNorm group count is not in this FlexTok checkpoint and 32 does not divide its widths "
                f"{list(block_out)}; pass the VAE's diffusers config.json (or a fixture config.json) as config=."
            )
        groups = 32
    head_dim = lambda tf, dim: int(tf.get("head_dim") or (dim // tf["num_heads"] if tf.get("num_heads") else 64))  # noqa: E731
    time_cfg = dec.get("dec_time_embedder", {})
    null_target = str((dec.get("dec_latent_dropout") or {}).get("_target_", ""))
    # training settings (only used when fine-tuning): nested dropout sampling, CFG condition dropout
    nested_mode = (dec.get("dec_nested_dropout") or {}).get("size_sampling_mode") or FlexTokConfig.nested_dropout_mode
    cond_p = (dec.get("dec_latent_dropout") or {}).get("dropout_prob", FlexTokConfig.cond_dropout_prob)
    return FlexTokConfig(
        image_size=grid * patch * 2 ** (n_blocks - 1),
        num_registers=num_registers,
        fsq_levels=levels,
        patch_size=patch,
        enc_dim=enc_dim,
        enc_depth=depth(e + "enc_transformer.blocks."),
        enc_head_dim=head_dim(enc_tf, enc_dim),
        dec_dim=dec_dim,
        dec_depth=depth(d + "dec_transformer.blocks."),
        dec_head_dim=head_dim(dec_tf, dec_dim),
        mlp_ratio=float(enc_tf.get("mlp_ratio", 4.0)),
        adaln_expansion=shape(d + "dec_transformer.blocks.0.adaLN_modulation.1.weight")[0] // (6 * dec_dim),
        null_cond="learned" if (d + "dec_latent_dropout.nullcond") in sd or "Learned" in null_target else "zero",
        time_freq_dim=shape(d + "dec_time_embedder.mlp.0.weight")[1],
        max_timestep=float(time_cfg.get("max_timestep", 1000.0 if time_cfg else 1.0)),
        vae_latent_channels=latent_c,
        vae_block_out_channels=block_out,
        vae_layers_per_block=depth(v + "encoder.down_blocks.0.resnets."),
        vae_norm_num_groups=int(groups),
        vae_use_quant_conv=(v + "quant_conv.weight") in sd,
        vae_use_post_quant_conv=(v + "post_quant_conv.weight") in sd,
        vae_scaling_factor=float(scaling),
        vae_sample_posterior=bool(off_vae.get("sample_posterior", False)),
        nested_dropout_mode=str(nested_mode),
        cond_dropout_prob=float(cond_p),
    )


def _hub_vae_scaling_factor(hub_path: str | None) -> float:
    """The released checkpoints may leave the VAE scaling factor to the VAE repo's config.json."""
    if not hub_path:
        raise ValueError(
            "The FlexTok checkpoint does not give the VAE scaling factor; pass the VAE's diffusers config.json "
            "as config= (e.g. from EPFL-VILAB/flextok_vae_c16)."
        )
    import json

    from huggingface_hub import hf_hub_download

    from zoo import registry

    name = _vae_entry(hub_path)  # a catalogue VAE: read it at the revision its entry pins
    revision = registry.lookup(name)[1].pretrained.revision if name else None
    try:
        return float(json.loads(open(hf_hub_download(hub_path, "config.json", revision=revision)).read())["scaling_factor"])
    except Exception as e:
        raise ValueError(
            f"The FlexTok checkpoint leaves the VAE scaling factor to {hub_path}/config.json, which could not be read "
            f"({type(e).__name__}). Download it and pass it as config=."
        ) from e
