"""WavTokenizer's official checkpoints: the only place that knows the upstream layout.

Upstream (github.com/jishengpeng/WavTokenizer, MIT) saves Lightning `.ckpt` pickles whose
`state_dict` holds `feature_extractor.encodec.*` (EnCodec's SEANet encoder and quantizer),
`backbone.*` and `head.*`, plus training-only modules. `remap_state_dict` renames them to ours;
`from_official_config` reads the architecture from the tensor shapes and checks it against an
official YAML (or a parity fixture's config.json).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from zoo.api import config_from_dict

from .model import WavTokenizer, WavTokenizerConfig

# Lightning-module entries in a released `.ckpt['state_dict']` that inference never uses, dropped on
# purpose: the three discriminators (MPD, MRD, and the two DAC discriminator instances), the mel-loss
# buffers, and EnCodec's SEANet decoder (built and saved upstream, never called). Anything else that
# is not an inference key is left in, so strict loading names it.
TRAINING_ONLY_PREFIXES = (
    "multiperioddisc.",
    "multiresddisc.",
    "dac.",
    "dacdiscriminator.",
    "melspec_loss.",
    "feature_extractor.encodec.decoder.",
)

_ENC = "feature_extractor.encodec.encoder."
_VQ = "feature_extractor.encodec.quantizer.vq.layers.0._codebook."
_VQ_RENAMES = {"embed": "codebook", "embed_avg": "embed_sum", "cluster_size": "cluster_size", "inited": "initialized"}
# legacy weight norm (weight_g / weight_v) -> torch.nn.utils.parametrizations.weight_norm
_WN = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def _strip_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Accept `state_dict.`-prefixed keys (tools that flatten a whole Lightning file)."""
    if state_dict and all(k.startswith("state_dict.") for k in state_dict):
        return {k[len("state_dict."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: WavTokenizerConfig | None = None) -> dict[str, Tensor]:
    """Official keys (`feature_extractor.` / `backbone.` / `head.`) -> ours (`encoder.`, `quantizer.`,
    `backbone.`, `head.`). Training-only keys (TRAINING_ONLY_PREFIXES) are dropped; any other key
    is passed through unchanged, so strict loading reports it."""
    out: dict[str, Tensor] = {}
    for key, value in _strip_prefix(state_dict).items():
        if key.startswith(TRAINING_ONLY_PREFIXES):
            continue
        if key.startswith(_ENC):
            rest = key[len(_ENC):]  # model.N.conv.conv.weight_g | model.N.block.1.conv.conv.bias | model.13.lstm.*
            rest = re.sub(r"\.conv\.conv\.(weight_g|weight_v)$", lambda m: ".conv." + _WN[m.group(1)], rest)
            rest = rest.replace(".conv.conv.bias", ".conv.bias")
            out["encoder." + rest] = value
        elif key.startswith(_VQ) and key[len(_VQ):] in _VQ_RENAMES:
            name = _VQ_RENAMES[key[len(_VQ):]]
            if name == "initialized":
                if value.device.type != "meta" and not bool(value.reshape(-1)[0]):
                    raise ValueError(
                        "This WavTokenizer checkpoint's codebook was never initialised (inited = 0); upstream would run "
                        "k-means on the first input it sees. Train it first, or use a released checkpoint."
                    )
                value = torch.ones((), dtype=torch.bool, device=value.device)
            out["quantizer." + name] = value
        elif key.startswith(("backbone.", "head.")):
            out[key] = value
        else:
            out[key] = value  # unknown: strict loading will name it
    return out


def _shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise ValueError(f"This is not a WavTokenizer checkpoint: it has no {key!r}.")
    return tuple(sd[key].shape)


def config_from_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Read every architecture number from the official tensor shapes."""
    sd = _strip_prefix(state_dict)
    conv_idx = sorted(
        int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(_ENC) + r"model\.(\d+)\.conv\.conv\.weight_v", k))
    )
    if len(conv_idx) < 3:
        raise ValueError("This is not a WavTokenizer checkpoint: no SEANet encoder convs under feature_extractor.encodec.encoder.")
    down = conv_idx[1:-1]  # first conv, strided convs, last conv
    strides = tuple(_shape(sd, f"{_ENC}model.{i}.conv.conv.weight_v")[-1] // 2 for i in down)
    n_res = len({int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(_ENC) + r"model\.(\d+)\.block\.1\.conv\.conv\.weight_v", k))})
    lstm = len([k for k in sd if re.fullmatch(re.escape(_ENC) + r"model\.\d+\.lstm\.weight_ih_l\d+", k)])
    n_q = len({k.split(".")[5] for k in sd if k.startswith("feature_extractor.encodec.quantizer.vq.layers.") and k.endswith("._codebook.embed")})
    if n_q != 1:
        raise ValueError(f"WavTokenizer has one codebook; this checkpoint has {n_q} quantizer layers.")
    codebook_size, encoder_dim = _shape(sd, _VQ + "embed")
    backbone_dim, backbone_in, _ = _shape(sd, "backbone.embed.weight")
    if backbone_in != encoder_dim:
        raise ValueError(f"Inconsistent WavTokenizer checkpoint: codebook dim {encoder_dim} vs backbone input {backbone_in}.")
    layers = len({k.split(".")[2] for k in sd if k.startswith("backbone.convnext.")})
    adanorm = _shape(sd, "backbone.norm.scale.weight")[0] if "backbone.norm.scale.weight" in sd else None
    return dict(
        strides=strides,
        encoder_filters=_shape(sd, f"{_ENC}model.0.conv.conv.weight_v")[0],
        encoder_dim=encoder_dim,
        encoder_residual_layers=n_res // max(len(strides), 1),
        encoder_lstm_layers=lstm,
        codebook_size=codebook_size,
        backbone_dim=backbone_dim,
        backbone_intermediate_dim=_shape(sd, "backbone.convnext.0.pwconv1.weight")[0],
        backbone_layers=layers,
        adanorm_num_embeddings=adanorm,
        attention_prelude=any(k.startswith("backbone.pos_net.") for k in sd),
        n_fft=_shape(sd, "head.out.weight")[0] - 2,
    )


def _official_numbers(config: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers an official YAML (or a fixture's config.json) states, in our field names."""
    model = config.get("model", config)
    args = model.get("init_args", model)
    fe = args.get("feature_extractor", {}).get("init_args", {})
    bb = args.get("backbone", {}).get("init_args", {})
    hd = args.get("head", {}).get("init_args", {})
    out: dict[str, Any] = {}
    if "dowmsamples" in fe:  # upstream's spelling; SEANet applies them in reverse
        out["strides"] = tuple(int(r) for r in reversed(fe["dowmsamples"]))
    if "vq_bins" in fe:
        out["codebook_size"] = int(fe["vq_bins"])
    if "vq_kmeans" in fe:
        out["kmeans_iters"] = int(fe["vq_kmeans"])
    if int(fe.get("num_quantizers", 1)) != 1:
        raise ValueError(f"WavTokenizer has one codebook; the config asks for num_quantizers={fe['num_quantizers']}.")
    for ours, theirs in (("backbone_dim", "dim"), ("backbone_intermediate_dim", "intermediate_dim"), ("backbone_layers", "num_layers"), ("encoder_dim", "input_channels")):
        if theirs in bb:
            out[ours] = int(bb[theirs])
    if "adanorm_num_embeddings" in bb:
        out["adanorm_num_embeddings"] = None if bb["adanorm_num_embeddings"] is None else int(bb["adanorm_num_embeddings"])
    if "n_fft" in hd:
        out["n_fft"] = int(hd["n_fft"])
    if hd.get("padding", "same") != "same":
        raise ValueError(f"WavTokenizer's iSTFT head uses padding='same'; the config asks for {hd['padding']!r}.")
    if "sample_rate" in args:
        out["sample_rate"] = int(args["sample_rate"])
    seanet = config.get("encodec_constant_overrides", {}).get("SEANetEncoder", {})  # parity fixtures only
    if "n_filters" in seanet:
        out["encoder_filters"] = int(seanet["n_filters"])
    return out


def from_official_config(config: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> WavTokenizerConfig:
    """Official YAML (`model.init_args...`), a parity fixture's config.json, our own config.json, or
    None -> WavTokenizerConfig. The architecture is read from the checkpoint's shapes; every number
    the config states must agree with them (else an error names the difference)."""
    if config is not None and "family" in config and "config" in config:  # our own format
        if config["family"] != WavTokenizer.family:
            raise ValueError(f"config.json is for family {config['family']!r}, not 'wavtokenizer'.")
        return WavTokenizer.config_from_dict(config["config"])
    fields = config_from_state_dict(state_dict)
    if config is not None:
        stated = _official_numbers(config)
        diffs = [f"{k}: config {v} vs checkpoint {fields[k]}" for k, v in stated.items() if k in fields and fields[k] != v]
        if diffs:
            raise ValueError("The config does not match the checkpoint: " + "; ".join(diffs) + ".")
        fields.update({k: v for k, v in stated.items() if k not in fields})
    return config_from_dict(WavTokenizerConfig, fields)
