"""The one contract every zoo tokenizer keeps.

`Tokenizer.encode(media) -> Tokens`, `Tokenizer.decode(Tokens) -> media`,
`Tokenizer.forward(media) -> TokenizerOutput`. The shape of the contract follows audiocraft's
`CompressionModel` (rate and codebook properties, result dataclasses) and the Hugging Face
`save_pretrained` / `from_pretrained` convention (config.json + model.safetensors + README.md).
Continuous autoencoders (`Autoencoder`: images <-> float latents, no ids) share the `Model` base
(config, device, precision) with tokenizers, not this contract.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from zoo import hub, runtime
from zoo.io import atomic_write

TOKENS_FORMAT = "zoo.tokens"
TOKENS_FORMAT_VERSION = 1
LAYOUTS = ("1d", "2d", "rvq", "multiscale", "streams")
MODALITIES = ("image", "audio", "3d")


# ----------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------
# The axis that holds the sequence for each layout (what `lengths` counts and `t[:, :k]` cuts).
_SEQ_AXIS = {"1d": 1, "rvq": 2, "streams": 2, "multiscale": 1, "2d": None}


# meta entries that may hold one value per item (a list of length B); slicing the batch slices them
_PER_ITEM_META = ("source", "num_samples")


@dataclass
class Tokens:
    """Discrete tokens with what is needed to decode them.

    ids: int64. Shape by layout:
      "1d"          [B, N]        ordered 1D tokens (any prefix decodes for 1D families)
      "2d"          [B, H, W] or [B, G, H, W] (group-wise codes)
      "rvq"         [B, Q, T]     residual layers x time
      "streams"     [B, S, T]     parallel streams (e.g. semantic / acoustic)
      "multiscale"  [B, N]        scales concatenated; meta["scale_sizes"] gives each scale's count
    lengths: [B] int64, valid items along the sequence axis (None when every item is full).
    meta: JSON-serialisable facts: family, variant, sample_rate, num_samples, image_size ...
    """

    ids: Tensor
    layout: str = "1d"
    lengths: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"Tokens layout {self.layout!r} is not one of {LAYOUTS}.")
        if not isinstance(self.ids, Tensor):
            raise TypeError(f"Tokens.ids must be a torch.Tensor; got {type(self.ids).__name__}.")
        if self.ids.is_floating_point() or self.ids.is_complex() or self.ids.dtype == torch.bool:
            raise TypeError(f"Tokens.ids must be an integer tensor; got {self.ids.dtype}.")
        self.ids = self.ids.long()
        if self.ids.dim() < 2:
            raise ValueError(f"Tokens.ids needs a batch axis: [B, ...]; got shape {list(self.ids.shape)}.")
        if self.lengths is not None:
            self.lengths = torch.as_tensor(self.lengths, dtype=torch.long).reshape(-1)
            if self.lengths.numel() != self.ids.shape[0]:
                raise ValueError(
                    f"Tokens.lengths has {self.lengths.numel()} entries for a batch of {self.ids.shape[0]}."
                )
            axis = _SEQ_AXIS[self.layout]
            if axis is not None and self.ids.dim() > axis and self.lengths.numel():
                n = self.ids.shape[axis]
                lo, hi = int(self.lengths.min()), int(self.lengths.max())
                if lo < 0 or hi > n:
                    raise ValueError(
                        f"Tokens.lengths must lie in [0, {n}] (the {self.layout} sequence axis holds {n}); got "
                        f"lengths in [{lo}, {hi}]."
                    )
        if not isinstance(self.meta, dict):
            raise TypeError(f"Tokens.meta must be a dict; got {type(self.meta).__name__}.")

    # -- properties --------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.ids.shape[0]

    @property
    def seq_axis(self) -> int | None:
        return _SEQ_AXIS[self.layout]

    @property
    def num_tokens(self) -> int:
        """Tokens per item (all axes but the batch), for a full item."""
        return self.ids[0].numel()

    def __len__(self) -> int:
        return self.batch_size

    def to(self, device) -> "Tokens":
        return dataclasses.replace(
            self,
            ids=self.ids.to(device),
            lengths=None if self.lengths is None else self.lengths.to(device),
        )

    # -- slicing -----------------------------------------------------------------------------
    def __getitem__(self, index) -> "Tokens":
        """Index like the ids tensor; lengths and meta follow.

        `t[i]` / `t[a:b]` select items; `t[:, :k]` keeps the first k tokens of a 1D layout
        (or the first k residual layers of an "rvq" layout), lengths clamped to k.
        """
        if not isinstance(index, tuple):
            index = (index,)
        if any(i is Ellipsis or i is None for i in index):
            raise IndexError("Tokens does not support Ellipsis or None indexing; index the axes explicitly.")
        batch_index = index[0]
        if isinstance(batch_index, int):
            batch_index = slice(batch_index, batch_index + 1 if batch_index != -1 else None)
        ids = self.ids[(batch_index,) + tuple(index[1:])]
        lengths = None if self.lengths is None else self.lengths[batch_index]
        meta = dict(self.meta)
        seq_axis = self.seq_axis
        if seq_axis is not None and len(index) > seq_axis:
            k = ids.shape[seq_axis]
            sub = index[seq_axis]
            if not (isinstance(sub, slice) and (sub.start in (None, 0)) and sub.step in (None, 1)):
                raise IndexError(
                    f"Tokens of layout {self.layout!r} can only be cut to a prefix along axis {seq_axis} "
                    f"(t[:, :k]); got {sub!r}."
                )
            if lengths is not None:
                lengths = lengths.clamp(max=k)
            elif self.layout == "1d":
                lengths = None
            if self.layout == "multiscale":
                raise IndexError("Cut multiscale tokens by scale with Tokens.first_scales(s), not by slicing.")
        if self.layout == "rvq" and len(index) > 1:
            meta["num_quantizers"] = ids.shape[1]
        for key in _PER_ITEM_META:  # per-item lists follow the batch index
            if key in meta and isinstance(meta[key], list) and isinstance(batch_index, slice):
                meta[key] = meta[key][batch_index]
        return Tokens(ids=ids, layout=self.layout, lengths=lengths, meta=meta)

    @classmethod
    def cat(cls, parts: "list[Tokens]") -> "Tokens":
        """Join batches of the same layout and shape (but the batch axis): the inverse of `t[a:b]`.
        Per-item meta lists are joined; every other meta entry must agree."""
        if not parts:
            raise ValueError("Tokens.cat needs at least one Tokens.")
        first = parts[0]
        for p in parts[1:]:
            if p.layout != first.layout or p.ids.shape[1:] != first.ids.shape[1:]:
                raise ValueError(f"Tokens.cat joins batches of one layout and item shape; got {first.layout} "
                                 f"{list(first.ids.shape[1:])} and {p.layout} {list(p.ids.shape[1:])}.")
            differ = sorted(k for k in set(first.meta) | set(p.meta)
                            if k not in _PER_ITEM_META and first.meta.get(k) != p.meta.get(k))
            if differ:
                raise ValueError(f"Tokens.cat: the batches' meta differ in {differ}.")
        meta = dict(first.meta)
        for key in _PER_ITEM_META:
            if all(isinstance(p.meta.get(key), list) for p in parts):
                meta[key] = [v for p in parts for v in p.meta[key]]
        lengths = None
        if any(p.lengths is not None for p in parts):
            full = first.ids.shape[first.seq_axis] if first.seq_axis is not None else 0
            lengths = torch.cat([p.lengths.to(p.ids.device) if p.lengths is not None
                                 else torch.full((p.batch_size,), full, dtype=torch.long, device=p.ids.device)
                                 for p in parts])
        return cls(ids=torch.cat([p.ids for p in parts]), layout=first.layout, lengths=lengths, meta=meta)

    def first_scales(self, s: int) -> "Tokens":
        """Multiscale layout: keep the first s scales."""
        if self.layout != "multiscale":
            raise ValueError(f"first_scales() is for multiscale tokens; these are {self.layout!r}.")
        sizes = list(self.meta["scale_sizes"])
        if not 1 <= s <= len(sizes):
            raise ValueError(f"first_scales(s) takes 1 <= s <= {len(sizes)}; got {s}.")
        n = sum(sizes[:s])
        meta = dict(self.meta, scale_sizes=sizes[:s])
        return Tokens(ids=self.ids[:, :n], layout=self.layout, lengths=None, meta=meta)

    def unpadded(self) -> list[Tensor]:
        """Per-item ids without padding (cut to lengths along the sequence axis)."""
        out = []
        for b in range(self.batch_size):
            item = self.ids[b]
            if self.lengths is not None and self.seq_axis is not None:
                item = item.narrow(self.seq_axis - 1, 0, int(self.lengths[b]))
            out.append(item)
        return out

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a versioned safetensors file (atomically: temp file + rename)."""
        from safetensors.torch import save_file

        tensors = {"ids": self.ids.detach().cpu().contiguous()}
        if self.lengths is not None:
            tensors["lengths"] = self.lengths.detach().cpu().contiguous()
        metadata = {
            "format": TOKENS_FORMAT,
            "format_version": str(TOKENS_FORMAT_VERSION),
            "layout": self.layout,
            "meta": json.dumps(self.meta, sort_keys=True),
        }
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokens":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No tokens file at {path}.")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"{path} is not a readable zoo tokens file ({e}).") from e
        if metadata.get("format") != TOKENS_FORMAT:
            raise ValueError(f"{path} is a safetensors file but not a zoo tokens file (no format={TOKENS_FORMAT!r}).")
        try:
            version = int(metadata.get("format_version", "0"))
        except ValueError:
            raise ValueError(f"{path} is a damaged zoo tokens file: format_version {metadata.get('format_version')!r} "
                             f"is not a number.") from None
        if version > TOKENS_FORMAT_VERSION:
            raise ValueError(
                f"{path} has tokens format version {version}; this zoo reads up to {TOKENS_FORMAT_VERSION}. Upgrade zoo."
            )
        if "ids" not in tensors:
            raise ValueError(f"{path} is a damaged zoo tokens file: it holds no 'ids' tensor (tensors: {sorted(tensors)}).")
        try:
            meta = json.loads(metadata.get("meta", "{}"))
        except ValueError as e:
            raise ValueError(f"{path} is a damaged zoo tokens file: its meta is not JSON ({e}).") from e
        if not isinstance(meta, dict):
            raise ValueError(f"{path} is a damaged zoo tokens file: its meta is a {type(meta).__name__}, not an object.")
        try:
            return cls(ids=tensors["ids"], layout=metadata.get("layout", "1d"), lengths=tensors.get("lengths"), meta=meta)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path} is a damaged zoo tokens file: {e}") from e


@dataclass
class TokenizerOutput:
    """What `Tokenizer.forward` returns: reconstruction, tokens and training losses.

    `features` (optional): the quantized latent that the decoder reads, channels first (audio
    `[B, D, T]`), differentiable through the quantizer's straight-through path, for training terms
    that look at the tokens' content (XY-Tokenizer's ASR alignment); `feature_lengths` `[B]`:
    valid frames along its last axis (None: every frame is valid). Families that do not expose
    them leave both None. `recon` is None only where a training pass was asked not to render
    (zoo.train.one_d_piece's `render=False`, for a proxy-code stage).
    """

    recon: Tensor | None
    tokens: Tokens
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)
    features: Tensor | None = None
    feature_lengths: Tensor | None = None


@dataclass
class FlowOutput:
    """What a flow/diffusion-decoder tokenizer's `flow_forward(x, *, t, noise)` returns for training.

    The tokenizer encodes `x`, builds its noisy input from `x`, `noise` and timesteps `t` ([B] in
    (0, 1)) by its own convention, and predicts. `velocity` is the prediction and `target` what it
    should equal (same shape); the training program samples `t` and `noise` and applies
    `zoo.train.losses.flow_matching_loss(velocity, target)`. `noise` is shaped like `x` unless the
    tokenizer defines `flow_noise_shape(x) -> tuple` (a flow over a latent, e.g. FlexTok's VAE latent).
    `losses` holds the other losses, already weighted (quantizer, REPA, ...).
    """

    velocity: Tensor
    target: Tensor
    tokens: Tokens
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------
def config_to_dict(cfg) -> dict[str, Any]:
    """A frozen config dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(cls, data: Mapping[str, Any]):
    """Build a config dataclass strictly: an unknown key is an error; lists become tuples."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(names)}.")
    return cls(**{k: _tupleize(v) for k, v in data.items()})


def _tupleize(v):
    if isinstance(v, list):
        return tuple(_tupleize(x) for x in v)
    return v


# ----------------------------------------------------------------------------------------------
# Model base: what zoo.load returns (a Tokenizer, or a continuous Autoencoder)
# ----------------------------------------------------------------------------------------------
class Model(nn.Module):
    """What every model zoo.load returns has: one frozen config, a catalogue name, a device and a precision.

    `Tokenizer` (media <-> ids) and `Autoencoder` (media <-> continuous latents) build on it. Subclasses set
    `family`, `modality`, `config_class` and build themselves from one frozen config.
    """

    kind: ClassVar[str] = ""  # "tokenizer" or "vae": what `zoo list` shows
    family: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    # The family's precision policy (zoo.runtime): submodules that stay fp32 when the model runs in
    # bf16 / fp16 (quantizer distances, STFT / mel front ends and iSTFT heads); the rest autocasts.
    fp32_modules: ClassVar[tuple[str, ...]] = ()
    # Submodules inside those islands that still run in bf16 (not fp16) under a bf16 run, where the family measured
    # that its ids do not move (a family may compute them from its config: a property).
    bf16_modules: ClassVar[tuple[str, ...]] = ()
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "fp16")
    # Batch chunking: the methods whose work splits exactly along the batch (items independent, any
    # noise drawn item by item in order), each with its per-item keyword arguments. Such a call runs at
    # most `max_batch` items at once (None: the whole batch), so a big batch costs a bounded memory.
    batch_split: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    max_batch: int | None = runtime.MAX_BATCH

    def __init__(self, cfg):
        super().__init__()
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}; got {type(cfg).__name__}.")
        self.cfg = cfg
        self.variant: str | None = None  # catalogue name, set by the loader
        self._precision = "fp32"
        self._fp32_hooks: list = []
        self.compiled = False
        self.weight_copy = True  # under bf16 / fp16: keep a reduced-precision copy of the Linear / Conv weights

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Images: (H, W) that file readers (CLI, pipelines) resize and centre-crop to: the size encode takes,
        or for a family that takes any size (WeTok: multiples of f) the training size, as upstream evaluates."""
        side = getattr(self.cfg, "image_size", None) if self.modality == "image" else None
        return (side, side) if side else None

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- where and how it runs -----------------------------------------------------------------
    @property
    def precision(self) -> str:
        """'fp32' (default: the official numerics, exact), 'bf16' or 'fp16' (autocast outside `fp32_modules`)."""
        return self._precision

    @precision.setter
    def precision(self, value) -> None:
        self.set_precision(value)

    def set_precision(self, precision) -> "Model":
        p = runtime.resolve_precision(precision)
        if p not in self.precisions:
            raise ValueError(f"{type(self).__name__} runs in {', '.join(self.precisions)}; got precision {precision!r}.")
        for h in self._fp32_hooks:
            h.remove()
        self._fp32_hooks = []
        if p != "fp32":
            islands = tuple(self.get_submodule(name) for name in self.fp32_modules)
            for module in islands:
                self._fp32_hooks += runtime.keep_fp32(module)
            if p == "bf16":
                for name in self.bf16_modules:
                    self._fp32_hooks += runtime.autocast_within(self.get_submodule(name), torch.bfloat16)
            if self.weight_copy and not self.compiled:  # its hooks would make torch.compile recompile on every call
                self._fp32_hooks += runtime.cache_low_precision_weights(self, runtime.PRECISIONS[p], skip=islands)
        self._precision = p
        return self

    def setup(self, device=None, precision=None, compile: bool = False, max_batch: int | None | str = "keep",
              weight_copy: bool | None = None) -> "Model":
        """Move to `device` ('cpu', 'cuda', 'cuda:N', 'auto'), set `precision`, optionally compile the
        parts that do not stay fp32 with torch.compile (never by default: compiling makes the first call
        slow), set `max_batch` (items per chunk of a `batch_split` method; None: no chunking) and
        `weight_copy` (False: under bf16 / fp16 autocast casts the fp32 weights in every call instead of
        keeping a reduced-precision copy, half the weights' size again in memory)."""
        if weight_copy is not None:
            self.weight_copy = bool(weight_copy)
            if precision is None:
                self.set_precision(self._precision)  # install or drop the copy now
        if max_batch != "keep":
            if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
                raise ValueError(f"max_batch must be a positive int or None (no chunking); got {max_batch!r}.")
            self.max_batch = max_batch
        if device is not None:
            self.to(runtime.resolve_device(device))
        if compile and not self.compiled:
            for name, child in self.named_children():
                if name not in self.fp32_modules and any(True for _ in child.parameters()):
                    child.compile(dynamic=True)
            self.compiled = True
            self.set_precision(self._precision)  # compiled graphs cast weights themselves: no weight cache
        if precision is not None:
            self.set_precision(precision)
        return self

    def autocast(self):
        """The scope encode and decode run in: autocast at `self.precision` on the model's device."""
        return runtime.autocast(self.device, self._precision)

    # -- config ----------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return config_to_dict(self.cfg)

    @classmethod
    def config_from_dict(cls, data: Mapping[str, Any]):
        return config_from_dict(cls.config_class, data)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, variant={self.variant!r}"


# ----------------------------------------------------------------------------------------------
# Tokenizer base
# ----------------------------------------------------------------------------------------------
class Tokenizer(Model):
    """Base of every zoo tokenizer: an encoder, a quantizer and a decoder behind one contract.

    Subclasses set `family`, `modality`, `config_class`, build themselves from one frozen config,
    and implement `encode`, `decode` and `forward`.
    """

    kind: ClassVar[str] = "tokenizer"
    # Optional facts a family overrides (as class attributes or properties):
    #   max_tokens         variable-length families: the longest sequence; any prefix 1..max decodes
    #   stochastic_decoder decode draws noise: pass generator= or noise= for reproducible output
    max_tokens: ClassVar[int | None] = None
    stochastic_decoder: ClassVar[bool] = False

    # -- properties every tokenizer has: read from the config's fields of these names or from the
    # zoo quantizer at `self.quantizer`, unless a family says it otherwise (then it overrides them) --
    @property
    def codebook_size(self) -> int:
        """Ids per codebook: the config's codebook_size, else the quantizer's (FSQ: the product of its levels)."""
        if hasattr(self.cfg, "codebook_size"):
            return self.cfg.codebook_size
        if not hasattr(getattr(self, "quantizer", None), "codebook_size"):
            raise NotImplementedError(f"{type(self).__name__} must define codebook_size")
        return self.quantizer.codebook_size

    @property
    def sample_rate(self) -> int | None:
        """Audio: the rate the model runs at (inputs are resampled to it)."""
        return getattr(self.cfg, "sample_rate", None) if self.modality == "audio" else None

    @property
    def num_codebooks(self) -> int:
        """Parallel codebooks (residual layers, LFQ groups): the quantizer's; 1 without a zoo quantizer."""
        return getattr(getattr(self, "quantizer", None), "num_codebooks", 1)

    @property
    def token_rate(self) -> float:
        """Tokens per second (audio), per image (image) or per shape (3d); a 1D family's is its max_tokens."""
        if self.max_tokens is None:
            raise NotImplementedError(f"{type(self).__name__} must define token_rate")
        return float(self.max_tokens)

    def stream_encoder(self):
        """Audio families: a stateful encoder, `push(chunk) -> Tokens` of what is final, then `flush()`."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming encoder; WavTokenizer and XY-Tokenizer have one.")

    def stream_decoder(self, *args, **kwargs):
        """Audio families: a stateful decoder, `push(ids) -> audio` of what is final, then `flush()`."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming decoder; WavTokenizer and XY-Tokenizer have one.")

    # -- contract ------------------------------------------------------------------------------
    def encode(self, x, **kwargs) -> Tokens:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, tokens: Tokens, **kwargs) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        """A small valid input `(x, encode_kwargs)` for this model: used by the contract tests
        and benchmarks (e.g. `(audio [B, 1, T], {"sample_rate": 24000})`). Images: uniform noise
        [B, 3, H, W] at `input_size`; other media: the family defines it."""
        if self.input_size is None:
            raise NotImplementedError(f"{type(self).__name__} must define example_input")
        h, w = self.input_size
        return torch.rand(batch_size, 3, h, w, generator=generator), {}

    def check_tokens(self, tokens: Tokens) -> None:
        """Raise a clear error for ids outside the codebook or tokens of another family."""
        if not isinstance(tokens, Tokens):
            raise TypeError(f"decode() takes zoo.Tokens; got {type(tokens).__name__}. Wrap ids with zoo.Tokens(ids, layout=...).")
        fam = tokens.meta.get("family")
        if fam and fam != self.family:
            raise ValueError(f"These tokens were made by a {fam!r} tokenizer; this is {self.family!r}.")
        variant = tokens.meta.get("variant")
        if fam and variant and self.variant and variant != self.variant:
            raise ValueError(
                f"These tokens were made by {variant!r}; this model is {self.variant!r}. Decode them with {variant!r} "
                f"(variants of one family differ in codebook, rate or size)."
            )
        for key in ("sample_rate", "hop_length"):  # facts of the model that the tokens record
            want, got = getattr(self, key, None), tokens.meta.get(key)
            if fam and isinstance(want, int) and got is not None and got != want:
                raise ValueError(f"These tokens record {key}={got!r}; this {self.family} model has {key}={want}. "
                                 f"They were made by another model.")
        if tokens.ids.numel() == 0:
            raise ValueError("Cannot decode empty tokens (no ids).")
        lo, hi = int(tokens.ids.min()), int(tokens.ids.max())
        if lo < 0 or hi >= self.codebook_size:
            raise ValueError(
                f"Token ids must lie in [0, {self.codebook_size - 1}] for {self.family}; got ids in [{lo}, {hi}]."
            )

    def check_num_tokens(self, k: int | None) -> int:
        """A variable-length family's token count (encode's `num_tokens=`, the length of ids to decode):
        an int in 1..max_tokens; None means max_tokens."""
        n = self.max_tokens
        if n is None:
            raise NotImplementedError(f"{type(self).__name__} has a fixed token count (no max_tokens).")
        if k is None:
            return n
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"{type(self).__name__} takes 1 to {n} tokens per item (num_tokens); got {k!r}.")
        return k

    def token_meta(self, **extra) -> dict[str, Any]:
        meta = {"family": self.family}
        if self.variant:
            meta["variant"] = self.variant
        meta.update(extra)
        return meta

    # -- saving and loading --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, card: str | None = None, **card_fields) -> Path:
        """Write config.json, model.safetensors and README.md (model card) into `directory`."""
        return hub.save_pretrained(self, directory, card=card, **card_fields)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, **kwargs) -> "Tokenizer":
        model = hub.load(source, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"{source} holds a {type(model).__name__}, not a {cls.__name__}.")
        return model

    def push_to_hub(self, repo_id: str, **kwargs):
        return hub.push_to_hub(self, repo_id, **kwargs)


# ----------------------------------------------------------------------------------------------
# Autoencoder base: continuous latents, no ids
# ----------------------------------------------------------------------------------------------
class Autoencoder(Model):
    """Base of a continuous autoencoder (a VAE): images -> float latents -> images. It has no codebook, so
    no Tokens: `zoo encode` / `zoo decode` refuse it, `zoo reconstruct` runs it.

    encode(x [B, 3, H, W] in [0, 1]) -> latents [B, latent_channels, H/f, W/f] with f = downsample_factor;
    decode(latents) -> images [B, 3, H, W] in [0, 1]; reconstruct(x) = decode(encode(x)), also `forward`.
    Its config gives `latent_channels` and `downsample_factor`.
    """

    kind: ClassVar[str] = "vae"
    modality: ClassVar[str] = "image"

    latent_channels = property(lambda self: self.cfg.latent_channels)  # C
    downsample_factor = property(lambda self: self.cfg.downsample_factor)  # f: pixels per latent pixel along each side

    def encode(self, x: Tensor, **kwargs) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, latents: Tensor, **kwargs) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reconstruct(self, x: Tensor, **encode_kwargs) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> their reconstructions, same shape and range."""
        return self.decode(self.encode(x, **encode_kwargs))

    def forward(self, x: Tensor, **encode_kwargs) -> Tensor:
        return self.reconstruct(x, **encode_kwargs)


def inference(method):
    """Decorator for a family's `encode` / `decode`: media and Tokens arrive on any device and are moved
    to the model's; the call runs under `torch.inference_mode()` and the model's precision scope;
    floating outputs come back as fp32 on the model's device."""

    @functools.wraps(method)
    def wrapper(self: Model, x, *args, **kwargs):
        device = self.device
        x = runtime.move_to(x, device)
        kwargs = {k: runtime.move_to(v, device) for k, v in kwargs.items()}
        per_item = self.batch_split.get(method.__name__)
        # a batch: Tokens, or images [B, 3, H, W] (other shapes go whole, so the family's checks name them)
        n = x.batch_size if isinstance(x, Tokens) else x.shape[0] if isinstance(x, Tensor) and x.dim() == 4 else None
        with torch.inference_mode(), self.autocast():
            if per_item is None or not self.max_batch or n is None or n <= self.max_batch or args:
                return runtime.media_out(method(self, x, *args, **kwargs))
            parts = []
            for i in range(0, n, self.max_batch):
                part = {k: v[i : i + self.max_batch] if k in per_item and v is not None else v for k, v in kwargs.items()}
                parts.append(method(self, x[i : i + self.max_batch], **part))
        return runtime.media_out(Tokens.cat(parts) if isinstance(parts[0], Tokens) else torch.cat(parts))

    return wrapper
