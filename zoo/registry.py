"""The catalogue: which families exist, which variants each releases, and where their weights live.

Like timm's `pretrained_cfg`, every variant names its weights with provenance (hub repo, revision,
file, sha256, license, paper). The families are an explicit tuple; nothing registers itself on
import, and a family module is imported only when one of its names is asked for.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

# Module names under zoo.tokenizers, in catalogue order. A family is listed here once its module exists.
FAMILIES: tuple[str, ...] = (
    "wavtokenizer",
    "xy_tokenizer",
    "flextok",
    "one_d_piece",
    "wetok",
    "selftok",
    "vat",
)


# Official catalogue entries whose hub commit is not yet known here: they follow the repo's `main`
# (a re-upload upstream changes what they load). Every other official entry pins a commit seen in
# public code that downloads the file (sources in models/<family>/NOTES.md). A pin is never guessed:
# an entry leaves this list only with a commit that was seen. tests/test_pins.py keeps the two in step.
NOT_YET_PINNED: tuple[str, ...] = (
    "wavtokenizer-small-40tps",
    "wavtokenizer-small-75tps",
    "wavtokenizer-medium-speech-75tps-v1",  # very likely in the v2 entry's commit too; not seen
    "wavtokenizer-medium-music-audio-75tps-v1",  # likewise
    "wavtokenizer-large-speech-75tps",  # the one snapshot seen names a different file
    "xy-tokenizer-16k",
    "xy-tokenizer-ttsd-32k",
    "flextok-d18-d18-in1k",
    "flextok-d18-d28-in1k",
    "flextok-d18-d28-dfn",
    "one-d-piece-b-256",
    "one-d-piece-l-256",
    "wetok-imagenet-f8",  # same repo as wetok-imagenet-f16, whose commit was seen; these files at it were not
    "wetok-general-cr24",
    "wetok-general-cr48",
    "wetok-general-cr192",
    "wetok-general-cr768-gd",
    "selftok-512",
    "selftok-512-renderer",
    "selftok-1024",
    "selftok-1024-renderer",
    "flextok-vae-c4",  # the standalone VAE repos: no commit seen in public code (all of it follows main)
    "flextok-vae-c8",
    "flextok-vae-c16",
)


# What a catalogue name loads as: a Tokenizer (ids), or a continuous autoencoder (latents, no ids).
KINDS = ("tokenizer", "vae")


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a variant's weights come from.

    format: "official" (the upstream release: converted on first load through the family's
    `remap_state_dict`) or "zoo" (our own hub layout: config.json + model.safetensors).
    """

    hub_id: str
    filename: str = "model.safetensors"
    revision: str | None = None  # a commit sha pins the exact files; None = the repo's main
    sha256: str | None = None  # of `filename`, when known; checked after download
    config_filename: str | None = None  # official config file in the same repo, when one is needed
    license: str = "unknown"
    paper: str = ""
    format: str = "official"


@dataclass(frozen=True)
class Variant:
    """One catalogue name.

    config: the family config instance for this variant (of the class `model_class` builds).
    pretrained: where its weights live (None: architecture only, e.g. a training config).
    embedded: folder under `models/` holding a small checkpoint trained here, in hub layout.
    kind: "tokenizer" (the family's Tokenizer: media <-> ids) or "vae" (the family's continuous
    autoencoder, FamilySpec.autoencoder: images <-> float latents, no ids).
    """

    name: str
    config: Any
    pretrained: PretrainedCfg | None = None
    embedded: str | None = None
    description: str = ""
    official: bool = True  # False for variants trained here
    extra: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "tokenizer"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Variant {self.name!r}: kind must be one of {KINDS}; got {self.kind!r}.")


@dataclass(frozen=True)
class FamilySpec:
    """What a family module exports as `FAMILY`.

    from_official_config(config: dict | None, state_dict, metadata) -> config instance. `config`
    is the parsed official config file (YAML or JSON) or a parity fixture's config.json; the
    state dict and the checkpoint's header metadata let a converter read shapes or an embedded config.
    remap_state_dict(state_dict, cfg) -> our state dict (official keys -> ours; training-only keys dropped).
    """

    name: str
    tokenizer: type
    config: type
    variants: tuple[Variant, ...]
    remap_state_dict: Callable[..., dict]
    from_official_config: Callable[..., Any]
    paper: str = ""
    upstream: str = ""
    description: str = ""
    tiny_config: Any = None  # smallest config, used by the contract tests and benchmarks
    autoencoder: type | None = None  # the class of the family's kind="vae" variants (a zoo.api.Autoencoder)


def model_class(spec: FamilySpec, variant: Variant) -> type:
    """The class a variant's config builds: the family's tokenizer, or its autoencoder for kind "vae"."""
    if variant.kind == "vae":
        if spec.autoencoder is None:
            raise TypeError(f"{variant.name} is a VAE entry but family {spec.name} defines no autoencoder class.")
        return spec.autoencoder
    return spec.tokenizer


def _module_name(name: str) -> str:
    """The module that holds a family (tests point this at test-only families)."""
    return f"zoo.tokenizers.{name}"


def family(name: str) -> FamilySpec:
    """The FamilySpec of a family module name (e.g. "wavtokenizer")."""
    if name not in FAMILIES:
        close = difflib.get_close_matches(name, FAMILIES, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown tokenizer family {name!r}.{hint} Families: {', '.join(FAMILIES) or '(none yet)'}.")
    module = importlib.import_module(_module_name(name))
    spec = getattr(module, "FAMILY", None)
    if not isinstance(spec, FamilySpec):
        raise TypeError(f"{_module_name(name)} must define FAMILY = FamilySpec(...).")
    return spec


def families() -> list[FamilySpec]:
    return [family(n) for n in FAMILIES]


def catalogue() -> dict[str, tuple[FamilySpec, Variant]]:
    """Every catalogue name -> (family, variant)."""
    out: dict[str, tuple[FamilySpec, Variant]] = {}
    for spec in families():
        for v in spec.variants:
            if v.name in out:
                raise ValueError(f"Catalogue name {v.name!r} is defined twice.")
            out[v.name] = (spec, v)
    return out


def list_models(pattern: str | None = None) -> list[str]:
    """Catalogue names, optionally filtered by a glob pattern (`"wavtokenizer*"`)."""
    names = list(catalogue())
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names)


def lookup(name: str) -> tuple[FamilySpec, Variant]:
    """(family, variant) of a catalogue name; an unknown name lists the closest ones."""
    cat = catalogue()
    if name in cat:
        return cat[name]
    raise KeyError(unknown_name_message(name, list(cat)))


def unknown_name_message(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if not close:  # also try prefix matches, which difflib ranks poorly for long names
        close = [n for n in names if n.startswith(name.split("-")[0])][:5]
    hint = f" Closest: {', '.join(close)}." if close else ""
    return (
        f"Unknown model {name!r}: not a catalogue name, a folder in zoo format, or a hub repo id.{hint}"
        " See `zoo list`."
    )


def embedded_variant(name: str, config: Any, folder: str, description: str, **fields) -> Variant:
    """A variant trained here: no hub release, its weights in models/<folder>/ (`fields`: Variant's others)."""
    return Variant(name, config, None, embedded=folder, official=False, description=description, **fields)


def family_spec(name: str, tokenizer: type, variants, convert, *, paper: str, upstream: str, description: str,
                tiny_config: Any, autoencoder: type | None = None) -> FamilySpec:
    """The FamilySpec of a family package: the config class is the tokenizer's, the converters are its convert.py's."""
    return FamilySpec(name=name, tokenizer=tokenizer, config=tokenizer.config_class, variants=tuple(variants),
                      remap_state_dict=convert.remap_state_dict, from_official_config=convert.from_official_config,
                      paper=paper, upstream=upstream, description=description, tiny_config=tiny_config,
                      autoencoder=autoencoder)
