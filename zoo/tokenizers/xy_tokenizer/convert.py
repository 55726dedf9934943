"""XY-Tokenizer's official checkpoints: the only place that knows the upstream layout.

Upstream (github.com/gyt1145028706/XY-Tokenizer and MOSS-TTSD's `XY_Tokenizer/`, Apache-2.0) releases
`xy_tokenizer.ckpt` pickles with no config, in three key spellings (gyt `vocos.`, MOSS-TTSD
`enhanced_vocos.`, a transformers-style port). `remap_state_dict` renames the keys to ours;
`from_official_config` reads the official YAML (`generator_params`) or a parity fixture's config.json,
or, with no config, the architecture from the tensor shapes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from torch import Tensor

from .model import StackConfig, XYTokenizerConfig

# Keys of the official checkpoints that nothing of ours uses. None: the codebook EMA state
# (`cluster_size`, `embed_avg`, `inited`) maps onto the shared ResidualVQ's EMA buffers, so that
# fine-tuning continues the EMA. Any key we do not know is passed through under its own name, so
# strict loading names it.
TRAINING_ONLY_KEYS: tuple[str, ...] = ()

# Key renames, first match wins (applied after the vocoder prefix and the HF-port spellings are
# normalised): official -> ours.
_RENAMES = (
    (r"^vocos\.backbone\.", "vocos."),
    (r"^vocos\.head\.", "head."),
    (r"^quantizer\.input_proj\.weight_g$", "quantizer_in.parametrizations.weight.original0"),
    (r"^quantizer\.input_proj\.weight_v$", "quantizer_in.parametrizations.weight.original1"),
    (r"^quantizer\.input_proj\.bias$", "quantizer_in.bias"),
    (r"^quantizer\.output_proj\.weight_g$", "quantizer_out.parametrizations.weight.original0"),
    (r"^quantizer\.output_proj\.weight_v$", "quantizer_out.parametrizations.weight.original1"),
    (r"^quantizer\.output_proj\.bias$", "quantizer_out.bias"),
    (r"^quantizer\.quantizers\.(\d+)\.codebook$", r"rvq.layers.\1.codebook"),
    (r"^quantizer\.quantizers\.(\d+)\.cluster_size$", r"rvq.layers.\1.cluster_size"),
    (r"^quantizer\.quantizers\.(\d+)\.embed_avg$", r"rvq.layers.\1.embed_sum"),
    (r"^quantizer\.quantizers\.(\d+)\.inited$", r"rvq.layers.\1.initialized"),
)


def _normalise_key(k: str) -> str:
    """Bring the three official spellings to one: gyt (`vocos.`), MOSS-TTSD (`enhanced_vocos.`) and
    the transformers-style port (`mlp.fc1`, parametrized weight norm)."""
    k = re.sub(r"^enhanced_vocos\.", "vocos.", k)
    k = re.sub(r"\.mlp\.(fc[12])\.", r".\1.", k)
    k = k.replace(".parametrizations.weight.original0", ".weight_g").replace(".parametrizations.weight.original1", ".weight_v")
    return k


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: XYTokenizerConfig) -> dict[str, Tensor]:
    """Official XY-Tokenizer keys -> ours: the vocoder's `backbone.`/`head.` split becomes
    `vocos.`/`head.`; the weight-normed RVQ projections become parametrized 1x1 convs; each
    `quantizer.quantizers.{i}` (codebook + EMA state) becomes `rvq.layers.{i}` of the shared
    ResidualVQ (`embed_avg` -> `embed_sum`, the [1] bool `inited` -> the 0-d `initialized`)."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        k = _normalise_key(key)
        if any(re.fullmatch(p, k) for p in TRAINING_ONLY_KEYS):
            continue
        for pattern, repl in _RENAMES:
            if re.search(pattern, k):
                k = re.sub(pattern, repl, k)
                break
        if k.endswith(".initialized"):
            value = value.reshape(())
        out[k] = value
    return out


# Whisper (transformers layout: WhisperForConditionalGeneration, or a bare WhisperModel), whose encoder starts
# XY-Tokenizer's semantic (and acoustic) encoder: our encoders keep Whisper's layout, so the copy is a rename.
WHISPER_ENCODER_PREFIXES = ("model.encoder.", "encoder.")


def whisper_encoder_state(state_dict: Mapping[str, Tensor], part: str = "semantic_encoder") -> dict[str, Tensor]:
    """A Whisper checkpoint -> its encoder's weights under `<part>.` (our names): `model.encoder.X` (or `encoder.X`)
    -> `<part>.X`, `embed_positions.weight` -> `positional_embedding` (the same sinusoid table); the decoder's keys
    are not used."""
    for prefix in WHISPER_ENCODER_PREFIXES:
        enc = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if enc:
            break
    else:
        raise ValueError(f"No Whisper encoder weights: no key starts with {WHISPER_ENCODER_PREFIXES} "
                         f"(first keys: {sorted(state_dict)[:3]}). Pass a transformers-layout Whisper checkpoint.")
    if "embed_positions.weight" in enc:
        enc["positional_embedding"] = enc.pop("embed_positions.weight")
    return {f"{part}.{k}": v for k, v in enc.items()}


def _layers(sd: Mapping[str, Tensor], prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"layers\.(\d+)\.", k)] if m}
    return max(idx) + 1 if idx else 0


def _infer_config(sd: Mapping[str, Tensor]) -> XYTokenizerConfig:
    """A config from the shapes of an official state dict (the released pickles ship none).
    Attention heads are not in the shapes: head width 64 is assumed (Whisper-small: 768 / 12)."""
    sd = {_normalise_key(k): v for k, v in sd.items()}
    need = ("semantic_encoder.conv1.weight", "quantizer.input_proj.weight_v", "vocos.head.out.weight")
    missing = [k for k in need if k not in sd]
    if missing:
        raise ValueError(
            f"This does not look like an XY-Tokenizer checkpoint: no {missing}. Pass the official config "
            "(YAML with generator_params) if the layout differs."
        )

    def stack(prefix: str, *, positions_key="positional_embedding") -> StackConfig:
        p, d = sd[f"{prefix}.{positions_key}"].shape
        ffn = sd[f"{prefix}.layers.0.fc1.weight"].shape[0]
        din = sd[f"{prefix}.proj.weight"].shape[1] if f"{prefix}.proj.weight" in sd else d
        dout = sd[f"{prefix}.out_proj.weight"].shape[0] if f"{prefix}.out_proj.weight" in sd else d
        return StackConfig(din, d, dout, _layers(sd, prefix + "."), max(1, d // 64), ffn, p)

    n_mels = sd["semantic_encoder.conv1.weight"].shape[1]
    sem = dataclasses.replace(stack("semantic_encoder"), input_dim=n_mels)
    aco = dataclasses.replace(stack("acoustic_encoder"), input_dim=n_mels)
    dec = dataclasses.replace(stack("acoustic_decoder"), output_dim=sd["acoustic_decoder.deconv2.weight"].shape[1])
    n_fft = sd["vocos.head.out.weight"].shape[0] - 2
    hop = n_fft // 4  # every release: 640/160, 960/240, 1280/320
    upsample = sd["upsample.up_conv.weight"].shape[2]
    n_q = len({k for k in sd if re.fullmatch(r"quantizer\.quantizers\.\d+\.codebook", k)})
    cfg = dict(
        n_mels=n_mels,
        semantic_encoder=sem,
        semantic_adapter=stack("semantic_encoder_adapter"),
        acoustic_encoder=aco,
        pre_rvq_adapter=stack("pre_rvq_adapter"),
        downsample=sd["downsample.gate_proj.weight"].shape[2],
        rvq_dim=sd["quantizer.input_proj.weight_v"].shape[0],
        num_quantizers=n_q,
        codebook_size=sd["quantizer.quantizers.0.codebook"].shape[0],
        post_rvq_adapter=stack("post_rvq_adapter"),
        upsample=upsample,
        acoustic_decoder=dec,
        vocos_dim=sd["vocos.backbone.embed.weight"].shape[0],
        vocos_intermediate_dim=sd["vocos.backbone.convnext.0.pwconv1.weight"].shape[0],
        vocos_layers=len({k.split(".")[3] for k in sd if k.startswith("vocos.backbone.convnext.")}),
        vocos_n_fft=n_fft,
        vocos_hop=hop,
        output_sample_rate=16000 * hop * 2 * upsample // (160 * 2 * sd["downsample.gate_proj.weight"].shape[2]),
    )
    return XYTokenizerConfig(**cfg)


def _require(section: Mapping, key: str, where: str):
    if key not in section:
        raise ValueError(f"XY-Tokenizer config: {where} has no {key!r}; it holds {sorted(section)}.")
    return section[key]


def from_official_config(config: Mapping | None, state_dict: Mapping[str, Tensor] | None = None,
                         metadata: Mapping | None = None) -> XYTokenizerConfig:
    """Official config (YAML `{sample_rate | input_sample_rate, generator_params: {...}}`, the bare
    `generator_params` mapping, or the parity fixture's config.json) -> XYTokenizerConfig.
    With config=None the shapes of `state_dict` decide (the released pickles carry no config)."""
    if config is None:
        if state_dict is None:
            raise ValueError("XY-Tokenizer conversion needs the official config or the checkpoint's state dict.")
        return _infer_config(state_dict)
    gp = config.get("generator_params", config)
    if "semantic_encoder_kwargs" not in gp:
        raise ValueError(
            "XY-Tokenizer config: expected the official schema (generator_params with semantic_encoder_kwargs, "
            f"quantizer_kwargs, vocos_kwargs, ...); got keys {sorted(gp)}."
        )
    in_sr = int(gp.get("input_sample_rate", gp.get("sample_rate", config.get("sample_rate", 16000))))
    fe = gp.get("feature_extractor_kwargs", {})
    q = _require(gp, "quantizer_kwargs", "generator_params")
    if q.get("codebook_dim", q["rvq_dim"]) != q["rvq_dim"]:
        raise ValueError(
            f"XY-Tokenizer: codebook_dim ({q['codebook_dim']}) != rvq_dim ({q['rvq_dim']}) adds per-layer projections "
            "that no release uses; this port supports codebook_dim == rvq_dim."
        )
    if q["input_dim"] == q["rvq_dim"] or q.get("output_dim", q["input_dim"]) == q["rvq_dim"]:
        raise ValueError("XY-Tokenizer: this port expects the RVQ input/output projections (rvq_dim different from input_dim/output_dim), as every release has.")

    def whisper(kw: Mapping, where: str, *, decoder: bool = False) -> StackConfig:
        if kw.get("kernel_size", 3) != 3:
            raise ValueError(f"XY-Tokenizer {where}: kernel_size {kw['kernel_size']} is not supported (the released 3 is).")
        if kw.get("activation_function", "gelu") != "gelu":
            raise ValueError(f"XY-Tokenizer {where}: activation {kw['activation_function']!r} is not supported (gelu is).")
        pre = "decoder" if decoder else "encoder"
        positions = (int(kw.get("max_audio_seconds", 30)) * int(kw.get("sampling_rate", in_sr)) // int(kw.get("hop_length", 160))) // int(kw.get("stride_size", 2))
        d, mels = int(kw["d_model"]), int(kw.get("num_mel_bins", 128))
        return StackConfig(
            input_dim=d if decoder else mels, dim=d, output_dim=mels if decoder else d,
            layers=int(kw[f"{pre}_layers"]), heads=int(kw[f"{pre}_attention_heads"]), ffn_dim=int(kw[f"{pre}_ffn_dim"]),
            max_positions=positions,
        )

    def adapter(kw: Mapping) -> StackConfig:
        d = int(kw["d_model"])
        return StackConfig(
            input_dim=int(kw.get("input_dim", d)), dim=d, output_dim=int(kw.get("output_dim", d)),
            layers=int(kw["encoder_layers"]), heads=int(kw["encoder_attention_heads"]), ffn_dim=int(kw["encoder_ffn_dim"]),
            max_positions=int(kw.get("max_source_positions", 1500)),
        )

    sem_kw = _require(gp, "semantic_encoder_kwargs", "generator_params")
    voc = _require(gp, "vocos_kwargs", "generator_params")
    if voc.get("padding", "same") != "same":
        raise ValueError(f"XY-Tokenizer vocos padding {voc['padding']!r} is not supported ('same' is).")
    up = int(_require(gp, "upsample_kwargs", "generator_params").get("stride", 4))
    stride = int(sem_kw.get("stride_size", 2))
    hop = int(voc.get("hop_size", 160))
    down = int(_require(gp, "downsample_kwargs", "generator_params").get("avg_pooler", 4))
    mel_hop = int(fe.get("hop_length", 160))
    out_sr = in_sr * hop * stride * up // (mel_hop * stride * down)
    if "output_sample_rate" in gp and int(gp["output_sample_rate"]) != out_sr:
        raise ValueError(f"XY-Tokenizer config: output_sample_rate {gp['output_sample_rate']} disagrees with the vocoder hop {hop} ({out_sr} Hz).")
    return XYTokenizerConfig(
        sample_rate=in_sr,
        output_sample_rate=out_sr,
        n_mels=int(fe.get("feature_size", 80)),
        mel_n_fft=int(fe.get("n_fft", 400)),
        mel_hop=mel_hop,
        window_seconds=int(fe.get("chunk_length", 30)),
        conv_stride=stride,
        semantic_encoder=whisper(sem_kw, "semantic_encoder_kwargs"),
        semantic_adapter=adapter(_require(gp, "semantic_encoder_adapter_kwargs", "generator_params")),
        acoustic_encoder=whisper(_require(gp, "acoustic_encoder_kwargs", "generator_params"), "acoustic_encoder_kwargs"),
        pre_rvq_adapter=adapter(_require(gp, "pre_rvq_adapter_kwargs", "generator_params")),
        downsample=down,
        rvq_dim=int(q["rvq_dim"]),
        num_quantizers=int(q["num_quantizers"]),
        codebook_size=int(q["codebook_size"]),
        post_rvq_adapter=adapter(_require(gp, "post_rvq_adapter_kwargs", "generator_params")),
        upsample=up,
        acoustic_decoder=whisper(_require(gp, "acoustic_decoder_kwargs", "generator_params"), "acoustic_decoder_kwargs", decoder=True),
        vocos_dim=int(voc.get("dim", 512)),
        vocos_intermediate_dim=int(voc.get("intermediate_dim", 4096)),
        vocos_layers=int(voc.get("num_layers", 30)),
        vocos_n_fft=int(voc.get("n_fft", 640)),
        vocos_hop=hop,
    )
