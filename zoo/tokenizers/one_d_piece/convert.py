"""One-D-Piece's official checkpoints: the only place that knows the upstream (TiTok) layout.

Upstream (github.com/turingmotors/One-D-Piece, Apache-2.0) releases stage-2 `pytorch_model.bin`
files with TiTok's key names (`ln_1`, `attn.in_proj_weight`, 1x1 convs as linears ...) and an
OmegaConf YAML. `remap_state_dict` renames the keys to ours; `from_official_config` reads the
YAML (or the hub mixin's config.json, or a parity fixture's) and fills the rest from tensor shapes.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
from torch import Tensor

from .model import VIT_SIZES, OneDPieceConfig

# Keys of official checkpoints that inference does not use and the converter drops. The released
# stage-2 files (`pytorch_model.bin`, also the EMA copies) hold none: every key is an inference key.
TRAINING_ONLY_KEYS: tuple[str, ...] = ()

_BLOCK_RENAMES = (
    ("ln_1.", "norm1."),
    ("ln_2.", "norm2."),
    ("attn.in_proj_weight", "attn.qkv.weight"),
    ("attn.in_proj_bias", "attn.qkv.bias"),
    ("attn.out_proj.", "attn.proj."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
)
_PLAIN_RENAMES = {
    "encoder.ln_pre.": "encoder.norm_pre.",
    "encoder.ln_post.": "encoder.norm_post.",
    "encoder.conv_out.": "encoder.to_token.",
    "decoder.ln_pre.": "decoder.norm_pre.",
    "decoder.ln_post.": "decoder.norm_post.",
    "decoder.decoder_embed.": "decoder.token_embed.",
    "decoder.ffn.": "decoder.head.",
}
_WHOLE_RENAMES = {
    "latent_tokens": "encoder.latent_tokens",  # part of the encoder here, so freezing the encoder fixes them
    "quantize.embedding.weight": "quantizer.codebook",
    "pixel_quantize.embedding.weight": "proxy_codebook",
}
_TRANSFORMER = re.compile(r"^(encoder|decoder)\.transformer\.(\d+)\.(.*)$")
_POINTWISE_CONVS = re.compile(r"^(encoder\.to_token|decoder\.head\.[02])\.weight$")


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: OneDPieceConfig | None = None) -> dict[str, Tensor]:
    """Official One-D-Piece keys (plain `OneDPiece.state_dict()`, no prefix) -> ours.

    Renames: `*.transformer.i.{ln_1,ln_2,attn.in_proj_*,attn.out_proj,mlp.c_fc,mlp.c_proj}` ->
    `*.blocks.i.{norm1,norm2,attn.qkv,attn.proj,mlp.fc1,mlp.fc2}`; `ln_pre/ln_post` -> `norm_pre/norm_post`;
    `encoder.conv_out` -> `encoder.to_token`, `decoder.decoder_embed` -> `decoder.token_embed`,
    `decoder.ffn` -> `decoder.head` (1x1 conv weights [O, I, 1, 1] -> linear [O, I]);
    `quantize.embedding.weight` -> `quantizer.codebook`; `pixel_quantize.embedding.weight` -> `proxy_codebook`;
    `latent_tokens` -> `encoder.latent_tokens`; the embeddings and `pixel_decoder.*` keep their names. The shared quantizer's
    bookkeeping buffers, absent upstream, are added: `quantizer.cluster_size` (ones) and
    `quantizer.initialized` (True). Keys in TRAINING_ONLY_KEYS are dropped; any other key passes
    through unchanged, so strict loading names it.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key in TRAINING_ONLY_KEYS:
            continue
        new = _WHOLE_RENAMES.get(key, key)
        m = _TRANSFORMER.match(new)
        if m:
            rest = m.group(3)
            for old, repl in _BLOCK_RENAMES:
                if rest.startswith(old):
                    rest = repl + rest[len(old):]
                    break
            new = f"{m.group(1)}.blocks.{m.group(2)}.{rest}"
        else:
            for old, repl in _PLAIN_RENAMES.items():
                if new.startswith(old):
                    new = repl + new[len(old):]
                    break
        if _POINTWISE_CONVS.match(new) and value.dim() == 4 and value.shape[-2:] == (1, 1):
            value = value.reshape(value.shape[0], value.shape[1])  # [O, I, 1, 1] -> [O, I]
        out[new] = value
    codebook = out.get("quantizer.codebook")
    if codebook is not None:
        out.setdefault("quantizer.cluster_size", torch.ones(codebook.shape[0], device=codebook.device))
        out.setdefault("quantizer.initialized", torch.tensor(True, device=codebook.device))
    return out


def _vit_size(name: str | None, table: Mapping[str, Any] | None, which: str) -> tuple[int, int, int] | None:
    if name is None:
        return None
    if table and name in table:
        t = table[name]
        return int(t["width"]), int(t["num_layers"]), int(t["num_heads"])
    if name in VIT_SIZES:
        return VIT_SIZES[name]
    known = sorted(set(VIT_SIZES) | set(table or {}))
    raise ValueError(f"Unknown One-D-Piece ViT size {name!r} for the {which}; known sizes: {known}.")


def _count_blocks(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    return len({int(m.group(1)) for k in state_dict if (m := pat.match(k))})


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...] | None:
    v = state_dict.get(key)
    return None if v is None else tuple(v.shape)


def from_official_config(config: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor] | None = None,
                         metadata: Mapping[str, str] | None = None) -> OneDPieceConfig:
    """Official config -> OneDPieceConfig.

    `config` may be the official OmegaConf YAML (`configs/one-d-piece_*.yaml`, as a dict), the
    config.json that the hub mixin writes (the same tree), a parity fixture's config.json (the same
    tree plus `patched_model_size_table`, `model.vq_model.pixel_codebook_size` and
    `model.vq_model.pixel_decoder`), or None: then every size is read from the state dict's shapes
    (heads from the official width -> heads table). The pixel decoder, hard-coded upstream, is read
    from the config when given, else from the state dict, else the released MaskGIT-VQGAN values.
    """
    sd = state_dict or {}
    fields: dict[str, Any] = {}
    if config is not None:
        if not isinstance(config, Mapping):
            raise TypeError(f"The One-D-Piece config must be a mapping (parsed YAML/JSON); got {type(config).__name__}.")
        vq = (config.get("model") or {}).get("vq_model")
        if not isinstance(vq, Mapping):
            raise ValueError(
                "This is not a One-D-Piece / TiTok config: it has no model.vq_model section "
                f"(top-level keys: {sorted(config)})."
            )
        if vq.get("finetune_decoder", True) is False:
            raise ValueError(
                "This config is a stage-1 TiTok/One-D-Piece model (finetune_decoder: false), which has no pixel "
                "decoder and returns proxy logits only; zoo loads the released stage-2 layout (finetune_decoder: true)."
            )
        table = config.get("patched_model_size_table")
        enc = _vit_size(vq.get("vit_enc_model_size"), table, "encoder")
        dec = _vit_size(vq.get("vit_dec_model_size"), table, "decoder")
        crop = ((config.get("dataset") or {}).get("preprocessing") or {}).get("crop_size")
        mlp = {float(t.get("mlp_ratio", 4.0)) for t in (table or {}).values()}
        for key, name in (("num_latent_tokens", "num_latent_tokens"), ("codebook_size", "codebook_size"),
                          ("token_size", "token_dim"), ("use_l2_norm", "use_l2_norm"),
                          ("commitment_cost", "commitment_cost"), ("vit_enc_patch_size", "encoder_patch_size"),
                          ("vit_dec_patch_size", "decoder_patch_size"), ("pixel_codebook_size", "proxy_codebook_size")):
            if key in vq:
                fields[name] = vq[key]
        if crop is not None:
            fields["image_size"] = int(crop)
        if enc:
            fields.update(encoder_width=enc[0], encoder_depth=enc[1], encoder_heads=enc[2])
        if dec:
            fields.update(decoder_width=dec[0], decoder_depth=dec[1], decoder_heads=dec[2])
        if len(mlp) == 1:
            fields["mlp_ratio"] = mlp.pop()
        pix = vq.get("pixel_decoder")
        if isinstance(pix, Mapping):
            mult = tuple(int(m) for m in pix.get("channel_mult", (1, 1, 2, 2, 4)))
            if int(pix.get("num_resolutions", len(mult))) != len(mult):
                raise ValueError(
                    f"pixel_decoder.num_resolutions ({pix['num_resolutions']}) must equal len(channel_mult) ({len(mult)})."
                )
            if int(pix.get("num_channels", 3)) != 3:
                raise ValueError(f"One-D-Piece decodes RGB images; pixel_decoder.num_channels is {pix['num_channels']}.")
            fields.update(pixel_channel_mult=mult)
            for key, name in (("hidden_channels", "pixel_channels"), ("num_res_blocks", "pixel_num_res_blocks"),
                              ("z_channels", "proxy_dim")):
                if key in pix:
                    fields[name] = int(pix[key])
    _fill_from_state_dict(fields, sd)
    try:
        return OneDPieceConfig(**fields)
    except TypeError as e:  # pragma: no cover - programming error guard
        raise ValueError(f"Could not build a OneDPieceConfig from the official config ({e}).") from e


def _fill_from_state_dict(fields: dict[str, Any], sd: Mapping[str, Tensor]) -> None:
    """Fill every size the config did not give from the checkpoint's shapes."""
    if not sd:
        return
    lt = _shape(sd, "latent_tokens")
    if lt:
        fields.setdefault("num_latent_tokens", lt[0])
    cb = _shape(sd, "quantize.embedding.weight")
    if cb:
        fields.setdefault("codebook_size", cb[0])
        fields.setdefault("token_dim", cb[1])
    pe = _shape(sd, "encoder.patch_embed.weight")
    pos = _shape(sd, "encoder.positional_embedding")
    if pe:
        fields.setdefault("encoder_patch_size", pe[-1])
        if pos:
            fields.setdefault("image_size", math.isqrt(pos[0] - 1) * pe[-1])
    for side in ("encoder", "decoder"):
        if f"{side}_width" in fields:
            continue
        w = _shape(sd, f"{side}.ln_pre.weight")
        if not w:
            continue
        depth = _count_blocks(sd, f"{side}.transformer")
        if w[0] not in {s[0] for s in VIT_SIZES.values()}:
            raise ValueError(
                f"The checkpoint's {side} width is {w[0]}, not an official One-D-Piece size "
                f"({sorted(s[0] for s in VIT_SIZES.values())}), so its number of heads cannot be read from the "
                "weights; pass the official config (model.vq_model.vit_*_model_size) as well."
            )
        heads = next(h for (ww, _, h) in VIT_SIZES.values() if ww == w[0])
        fields.update({f"{side}_width": w[0], f"{side}_depth": depth, f"{side}_heads": heads})
    dpos = _shape(sd, "decoder.positional_embedding")
    if dpos and "image_size" in fields and "decoder_patch_size" not in fields:
        fields["decoder_patch_size"] = fields["image_size"] // math.isqrt(dpos[0] - 1)
    pq = _shape(sd, "pixel_quantize.embedding.weight")
    if pq:
        fields.setdefault("proxy_codebook_size", pq[0])
        fields.setdefault("proxy_dim", pq[1])
    out = _shape(sd, "pixel_decoder.norm_out.weight")
    levels = {int(m.group(1)) for k in sd if (m := re.match(r"^pixel_decoder\.up\.(\d+)\.", k))}
    if out and levels and "pixel_channel_mult" not in fields:
        mult = []
        for i in range(max(levels) + 1):
            c = _shape(sd, f"pixel_decoder.up.{i}.block.0.conv2.weight")
            mult.append(c[0] // out[0] if c else 1)
        fields["pixel_channel_mult"] = tuple(mult)
        fields.setdefault("pixel_channels", out[0])
        fields.setdefault("pixel_num_res_blocks", _count_blocks(sd, "pixel_decoder.mid"))


# ----------------------------------------------------------------------------------------------
# the MaskGIT-VQGAN proxy teacher: `maskgit-vqgan-imagenet-f16-256.bin` (hub repo fun-research/TiTok)
# ----------------------------------------------------------------------------------------------
# Upstream's PretrainedTokenizer: `encoder.*` (the VQGAN encoder; zoo.blocks.maskgit_vqgan keeps the names),
# `quantize.embedding.weight` (the 1024 x 256 codebook) and `decoder.*` (the pixel decoder, our PixelDecoder).
MASKGIT_VQGAN_CODEBOOK = "quantize.embedding.weight"
MASKGIT_VQGAN_IGNORED_PREFIXES = ("decoder.",)  # proxy codes need only the encoder and the codebook
MASKGIT_VQGAN_ACCEPTED = ("Accepted: upstream PretrainedTokenizer's encoder.* and quantize.embedding.weight (here "
                          f"`codebook`); keys under {list(MASKGIT_VQGAN_IGNORED_PREFIXES)} are ignored.")


def maskgit_vqgan_teacher_state(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The teacher file -> the keys of zoo.train.proxy.MaskGITVQGANTeacher: `quantize.embedding.weight` ->
    `codebook`, `encoder.*` as is, `decoder.*` dropped; any other key passes through, so the strict check names it."""
    return {("codebook" if k == MASKGIT_VQGAN_CODEBOOK else k): v for k, v in state_dict.items()
            if not k.startswith(MASKGIT_VQGAN_IGNORED_PREFIXES)}


def maskgit_vqgan_teacher_sizes(sd: Mapping[str, Tensor], source: str = "the teacher") -> dict[str, Any]:
    """The teacher's constructor arguments (channels, channel_mult, num_res_blocks, z_channels, num_codes), read
    from the teacher file's shapes."""
    needed = ["encoder.conv_in.weight", "encoder.conv_out.weight", MASKGIT_VQGAN_CODEBOOK,
              "encoder.down.0.block.0.conv1.weight"]
    absent = [k for k in needed if k not in sd]
    if absent:
        raise ValueError(f"{source} holds no MaskGIT-VQGAN encoder and codebook: missing {', '.join(absent)}. "
                         "Expected the official maskgit-vqgan-imagenet-f16-256.bin (fun-research/TiTok) or the same keys.")
    channels = sd["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down."))
    blocks = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down.0.block."))
    mult = []
    for i in range(levels):
        w = sd.get(f"encoder.down.{i}.block.0.conv1.weight")
        if w is None or w.shape[0] % channels:
            raise ValueError(f"{source}: level {i} of the MaskGIT-VQGAN encoder has no block 0 conv1 whose width is a "
                             f"multiple of conv_in's {channels} channels (encoder.down.{i}.block.0.conv1.weight: "
                             f"{None if w is None else list(w.shape)}).")
        mult.append(w.shape[0] // channels)
    return dict(channels=channels, channel_mult=tuple(mult), num_res_blocks=blocks,
                z_channels=sd["encoder.conv_out.weight"].shape[0], num_codes=sd[MASKGIT_VQGAN_CODEBOOK].shape[0])


def maskgit_vqgan_stage2_state(state_dict: Mapping[str, Tensor], source: str = "the teacher") -> dict[str, Tensor]:
    """The teacher file's codebook and decoder as One-D-Piece's `proxy_codebook` and `pixel_decoder.*`: stage 2's
    start. Upstream's stage 2 adds the file's `quantize.*` / `decoder.*` keys under `pixel_quantize.*` /
    `pixel_decoder.*` (its `encoder.*` is left out); remap_state_dict then renames them as in a released checkpoint."""
    official = {"pixel_" + k: v for k, v in state_dict.items() if k.startswith(("quantize.", "decoder."))}
    if not any(k.startswith("pixel_decoder.") for k in official):
        raise ValueError(f"{source} has no decoder.* keys: stage 2 starts its pixel decoder from the MaskGIT-VQGAN "
                         "decoder (a patch k-means stand-in teacher has none).")
    return remap_state_dict(official)
