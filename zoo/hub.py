"""Weights in and out: catalogue names, local folders and hub repos -> a ready Tokenizer.

Our format is the Hugging Face one: a folder with `config.json` (family, variant, config fields,
format_version; never an import path), `model.safetensors` and `README.md` (model card).
Official checkpoints are read safely (safetensors, or `torch.load(weights_only=True)`), renamed
only by the family's `remap_state_dict`, loaded strictly, and cached in our format.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from zoo import registry, runtime
from zoo.io import atomic_write, atomic_write_text

if TYPE_CHECKING:  # annotations only: zoo.api builds on this module (Tokenizer.save_pretrained calls it)
    from zoo.api import Model, Tokenizer

CONFIG_FORMAT_VERSION = 1  # of config.json; a reader refuses newer versions
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
LIBRARY_NAME = "zoo"
# Our own hub organisation for the variants trained here (zoo format).
ZOO_HUB_ORG = "tokenizer-zoo"


# ----------------------------------------------------------------------------------------------
# where things live
# ----------------------------------------------------------------------------------------------
def shelf_dir() -> Path:
    """Where the embedded defaults lie: `models/` of the source checkout this package runs from, else
    `<prefix>/share/tokenizer-zoo/models/`, where an installed wheel puts them (pyproject data-files)."""
    checkout = Path(__file__).resolve().parent.parent / "models"
    if checkout.is_dir():
        return checkout
    for scheme in (None, f"{os.name}_user"):
        try:
            data = sysconfig.get_path("data", scheme) if scheme else sysconfig.get_path("data")
        except KeyError:  # no such scheme on this platform
            continue
        installed = Path(data) / "share" / "tokenizer-zoo" / "models"
        if installed.is_dir():
            return installed
    return checkout


def default_cache_dir() -> Path:
    """Converted official checkpoints are cached beside the hub cache (HF_HOME/zoo)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "zoo"


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


# ----------------------------------------------------------------------------------------------
# reading checkpoints safely
# ----------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint file -> (flat state dict of tensors, header metadata).

    safetensors are read as they are; `.ckpt/.bin/.pth/.pt` pickles with
    `torch.load(weights_only=True)` (no code from the file runs). Containers such as Lightning's
    `{"state_dict": ...}` or `{"generator": ...}` are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    if path.stat().st_size == 0:
        raise ValueError(f"Checkpoint {path} is empty (0 bytes); the download or copy was cut short.")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise ValueError(f"Checkpoint {path} is not a readable safetensors file ({e}); it may be truncated or corrupt.") from e
        return sd, meta
    if path.suffix in (".ckpt", ".bin", ".pth", ".pt"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(
                f"Checkpoint {path} could not be read with torch.load(weights_only=True) ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}). It may be truncated, corrupt, or need classes "
                "that a safe load does not allow."
            ) from e
        return unwrap_state_dict(obj, path), {}
    raise ValueError(
        f"Unsupported checkpoint type {path.suffix!r} ({path.name}); accepted: .safetensors, .ckpt, .bin, .pth, .pt."
    )


_CONTAINER_KEYS = ("state_dict", "generator", "model", "module", "net")


def unwrap_state_dict(obj: Any, source: Any = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the flat {name: tensor} dict inside a loaded checkpoint object."""
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) >= len(obj) // 2:
            return tensors
        for key in _CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return unwrap_state_dict(obj[key], source)
    raise ValueError(
        f"{source} holds no state dict (looked for a flat dict of tensors, or one under "
        f"{', '.join(_CONTAINER_KEYS)})."
    )


def read_config_file(path: str | os.PathLike | None) -> dict | None:
    """An official config (YAML or JSON) -> dict."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No config file at {path}.")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:
        raise ValueError(f"Config {path} could not be parsed ({e}).") from e
    if not isinstance(data, dict):
        raise ValueError(f"Config {path} must hold a mapping at the top level; got {type(data).__name__}.")
    return data


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# strict loading
# ----------------------------------------------------------------------------------------------
def _expected_tensors(model: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint", *,
                     within: tuple[str, ...] = (), hint: str = "") -> None:
    """Raise one error naming every missing key, unexpected key and shape difference.

    within: check only the model's tensors whose names start with one of these (a part being replaced, e.g.
    `("pixel_decoder.",)`); the state dict must then hold exactly those. hint: a sentence ending the error
    (what would fit)."""
    expected = _expected_tensors(model)
    if within:
        expected = {k: v for k, v in expected.items() if k.startswith(within)}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(expected[k])}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or shapes):
        return

    def listing(title, items):
        if not items:
            return ""
        head = "\n    ".join(items[:20])
        more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
        return f"\n  {title} ({len(items)}):\n    {head}{more}"

    part = f" (its {', '.join(p + '*' for p in within)})" if within else ""
    raise ValueError(
        f"{source} does not match {type(model).__name__}{part}:"
        + listing("missing keys", missing)
        + listing("unexpected keys", unexpected)
        + listing("shape mismatches", shapes)
        + (f"\n  {hint}" if hint else "")
    )


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint", *,
                           within: tuple[str, ...] = (), hint: str = "") -> None:
    """check_state_dict, then load (with `within`, only that part of the model is replaced)."""
    check_state_dict(model, state_dict, source, within=within, hint=hint)
    model.load_state_dict(state_dict, strict=not within)


# ----------------------------------------------------------------------------------------------
# our format
# ----------------------------------------------------------------------------------------------
def config_json(model: Tokenizer) -> dict[str, Any]:
    from zoo import __version__

    return {
        "family": model.family,
        "variant": model.variant,
        "format_version": CONFIG_FORMAT_VERSION,
        "zoo_version": __version__,
        "config": model.config_dict(),
    }


def save_pretrained(model: Tokenizer, directory: str | os.PathLike, card: str | None = None, **card_fields) -> Path:
    """Write `config.json`, `model.safetensors`, `README.md` into `directory` (each file atomically)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = _untie(state)
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt", "library": LIBRARY_NAME}))
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config_json(model), indent=2, sort_keys=False) + "\n")
    text = card if card is not None else model_card(model, **card_fields)
    atomic_write_text(directory / CARD_NAME, text)
    return directory


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage; clone tensors that alias an earlier one."""
    seen: dict[tuple, str] = {}
    out = {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if key is not None and key in seen:
            v = v.clone()
        elif key is not None:
            seen[key] = k
        out[k] = v
    return out


def load_folder(directory: str | os.PathLike) -> Model:
    """A folder in zoo format -> Tokenizer (eval mode, fp32, CPU); a local copy of a released VAE repo -> its Autoencoder."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{directory} is not a zoo model folder: it has no {CONFIG_NAME}.")
    try:
        data = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path} is not valid JSON ({e}).") from e
    if isinstance(data, dict) and "family" not in data and data.get("_class_name"):  # a released (diffusers-style) folder
        return _load_released_folder(directory, data["_class_name"])
    for key in ("family", "config", "format_version"):
        if key not in data:
            raise ValueError(f"{cfg_path} is not a zoo config: missing {key!r} (need family, variant, config, format_version).")
    if int(data["format_version"]) > CONFIG_FORMAT_VERSION:
        raise ValueError(f"{cfg_path} has format_version {data['format_version']}; this zoo reads up to {CONFIG_FORMAT_VERSION}.")
    spec = registry.family(data["family"])
    cfg = spec.tokenizer.config_from_dict(data["config"])
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} has no {WEIGHTS_NAME}.")
    _check_config_fits_weights(spec, cfg, weights)
    model = spec.tokenizer(cfg)
    try:
        state = load_file(str(weights))
    except Exception as e:
        raise ValueError(f"{weights} is not a readable safetensors file ({e}); it may be truncated or corrupt.") from e
    load_state_dict_strict(model, state, source=str(weights))
    model.variant = data.get("variant")
    return model.float().eval()


def _load_released_folder(directory: Path, class_name: str) -> Model:
    """A local copy of a released autoencoder repo (its config.json names the class) -> the family's Autoencoder."""
    for spec in registry.families():
        ae = spec.autoencoder
        if ae is not None and class_name in ae.released_classes:
            model = ae.from_released(directory / CONFIG_NAME, directory / ae.released_weights)
            model.variant = None
            return model
    raise ValueError(f"{directory} holds a released {class_name} (its config.json names no zoo family); zoo reads "
                     f"folders in zoo format and the released VAEs (`zoo list` marks them vae).")


# Memory a config may ask for beyond its weights (non-persistent buffers such as windows and filterbanks).
MAX_EXTRA_ELEMENTS = 2**28


class _Shaped:
    def __init__(self, shape):
        self.shape = torch.Size(shape)


def _check_config_fits_weights(spec, cfg, weights: Path) -> None:
    """Build the model on the meta device (no memory) and compare it with the weights file's header, so a
    config with an absurd size is refused before anything is allocated. Families whose constructor cannot
    run on the meta device are left to the strict load that follows."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {k: _Shaped(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:
        raise ValueError(f"{weights} is not a readable safetensors file ({e}); it may be truncated or corrupt.") from e
    try:
        with torch.device("meta"):
            probe = spec.tokenizer(cfg)
    except Exception:  # noqa: BLE001 - not meta-constructible: the strict load below still checks every shape
        return
    check_state_dict(probe, header, source=str(weights))
    state = sum(v.numel() for v in probe.state_dict().values())
    total = sum(p.numel() for p in probe.parameters()) + sum(b.numel() for b in probe.buffers())
    if total - state > MAX_EXTRA_ELEMENTS:
        raise ValueError(f"The config of {weights.parent} would allocate {total - state:,} values beyond its weights "
                         f"(over {MAX_EXTRA_ELEMENTS:,}); the config is likely damaged.")


# ----------------------------------------------------------------------------------------------
# official checkpoints
# ----------------------------------------------------------------------------------------------
def convert(family: str, checkpoint: str | os.PathLike, config: str | os.PathLike | Mapping | None = None) -> Tokenizer:
    """Official checkpoint file (+ official config) -> our Tokenizer, loaded strictly, in eval mode.

    `config` may be the official config file in its released format (YAML/JSON), a parity
    fixture's config.json, an already parsed dict, or None where the checkpoint carries its config.
    """
    spec = registry.family(family)
    state_dict, metadata = read_checkpoint(checkpoint)
    cfg_data = dict(config) if isinstance(config, Mapping) else read_config_file(config)
    cfg = spec.from_official_config(cfg_data, state_dict, metadata)
    model = spec.tokenizer(cfg)
    ours = spec.remap_state_dict(state_dict, cfg)
    load_state_dict_strict(model, ours, source=f"{family} checkpoint {Path(checkpoint).name}")
    return model.float().eval()


def _download(pre: registry.PretrainedCfg, filename: str, cache_dir: str | None,
              local: str = "convert a local copy with `zoo convert`") -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(pre.hub_id, filename, revision=pre.revision, cache_dir=cache_dir, local_files_only=_offline()))
    except Exception as e:
        state = "offline (HF_HUB_OFFLINE=1) and not in the hub cache" if _offline() else f"{type(e).__name__}: {e}"
        raise FileNotFoundError(
            f"Could not get {filename} from hub repo {pre.hub_id}"
            f"{'@' + pre.revision if pre.revision else ''}: {state}. Download it where the hub can be "
            f"reached (huggingface-cli download {pre.hub_id} {filename}), or {local}."
        ) from e


def _download_weights(variant: registry.Variant, cache_dir: str | None, *local: str) -> Path:
    pre = variant.pretrained
    ckpt = _download(pre, pre.filename, cache_dir, *local)
    if pre.sha256 and sha256_file(ckpt) != pre.sha256:
        raise ValueError(f"{ckpt} does not have the sha256 recorded for {variant.name} ({pre.sha256}); the file is corrupt or changed upstream.")
    return ckpt


def _load_autoencoder(spec: registry.FamilySpec, variant: registry.Variant, cache_dir: str | None) -> Model:
    """A released autoencoder (kind "vae"): its config file and weights, read as they are (their keys are ours)."""
    local = "load a local copy of the whole repo with zoo.load(FOLDER)"
    weights = _download_weights(variant, cache_dir, local)
    config = _download(variant.pretrained, variant.pretrained.config_filename or CONFIG_NAME, cache_dir, local)
    return registry.model_class(spec, variant).from_released(config, weights, expected=variant.config)


def _load_official(spec: registry.FamilySpec, variant: registry.Variant, cache_dir: str | None) -> Tokenizer:
    pre = variant.pretrained
    root = Path(cache_dir) / "zoo-converted" if cache_dir else default_cache_dir()
    converted = root / variant.name / (pre.revision or "main")
    if (converted / CONFIG_NAME).is_file() and (converted / WEIGHTS_NAME).is_file():
        model = load_folder(converted)
        model.variant = variant.name
        return model
    ckpt = _download_weights(variant, cache_dir)
    cfg_file = _download(pre, pre.config_filename, cache_dir) if pre.config_filename else None
    model = convert(spec.name, ckpt, cfg_file)
    model.variant = variant.name
    _save_dir_atomically(model, converted, source=f"converted from {pre.hub_id}/{pre.filename}")
    return model


def _save_dir_atomically(model: Tokenizer, target: Path, **card_fields) -> None:
    """Write a whole folder beside `target`, then rename it into place (no half-written cache)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_pretrained(model, tmp, **card_fields)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_zoo_repo(repo_id: str, revision: str | None, cache_dir: str | None) -> Tokenizer:
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        repo_id,
        revision=revision,
        cache_dir=cache_dir,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
        local_files_only=_offline(),
    )
    return load_folder(folder)


# ----------------------------------------------------------------------------------------------
# the one entry point
# ----------------------------------------------------------------------------------------------
def load(source: str | os.PathLike, *, revision: str | None = None, cache_dir: str | None = None,
         device: str | torch.device | None = None, precision: str = "fp32", compile: bool = False,
         max_batch: int | None = runtime.MAX_BATCH, weight_copy: bool = True) -> Model:
    """A catalogue name, a local folder in zoo format, or a hub repo id in zoo format -> Tokenizer
    (or, for the catalogue's VAEs and local copies of their repos, a continuous `zoo.api.Autoencoder`).

    `cache_dir`: the hub cache to use (default: huggingface_hub's). Official checkpoints are
    converted once and kept in our format (under `<cache_dir>/zoo-converted`, default HF_HOME/zoo); the
    released VAEs are read as they are (config.json with the scaling factor, weights whose keys are ours).
    `device`: 'cpu' (default), 'cuda', 'cuda:N' or 'auto' (CUDA when present). `precision`: 'fp32'
    (default, the official numerics), 'bf16' or 'fp16' (the family's precision policy keeps quantizer
    distances and spectral front ends in fp32). `compile`: torch.compile the model's parts (off by
    default: it makes the first call slow). `max_batch`: the most items an image encode / decode runs
    at once where the family splits a batch exactly (None: the whole batch). `weight_copy`: under bf16 / fp16,
    keep a reduced-precision copy of the Linear / Conv weights outside the fp32 parts (default: faster, half the
    weights' size again in memory; False: autocast casts them in every call). The result is in eval mode.
    """
    dev = runtime.resolve_device(device) if device is not None else None  # bad names fail before any download
    prec = runtime.resolve_precision(precision)
    model = _load(source, revision=revision, cache_dir=cache_dir)
    return model.setup(device=dev, precision=prec, compile=compile, max_batch=max_batch, weight_copy=weight_copy)


def _load(source: str | os.PathLike, *, revision: str | None, cache_dir: str | None) -> Model:
    if isinstance(source, os.PathLike) or (isinstance(source, str) and Path(source).is_dir()):
        return load_folder(source)
    if not isinstance(source, str) or not source:
        raise TypeError(f"zoo.load takes a catalogue name, folder or hub repo id; got {source!r}.")
    cat = registry.catalogue()
    if source in cat:
        spec, variant = cat[source]
        return _load_variant(spec, variant, revision=revision, cache_dir=cache_dir)
    if _looks_like_repo_id(source) and not Path(source).exists():
        try:
            return _load_zoo_repo(source, revision, cache_dir)
        except Exception as e:
            raise FileNotFoundError(
                f"{source!r} is not a catalogue name or local folder, and loading it as a hub repo failed "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
                + registry.unknown_name_message(source, list(cat)).split(": ", 1)[-1]
            ) from e
    if Path(source).exists():
        raise ValueError(f"{source} is a file, not a model folder; convert official checkpoints with zoo.convert(family, checkpoint=...).")
    raise KeyError(registry.unknown_name_message(source, list(cat)))


def _looks_like_repo_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/")) and " " not in s


def _load_variant(spec, variant, *, revision=None, cache_dir=None) -> Model:
    pre = variant.pretrained
    errors = []
    if pre is not None and revision is not None:
        pre = registry.PretrainedCfg(**{**pre.__dict__, "revision": revision})
        variant = registry.Variant(**{**variant.__dict__, "pretrained": pre})
    if pre is not None:
        try:
            if variant.kind == "vae":
                model = _load_autoencoder(spec, variant, cache_dir)
            elif pre.format == "zoo":
                model = _load_zoo_repo(pre.hub_id, pre.revision, cache_dir)
            else:
                model = _load_official(spec, variant, cache_dir)
            model.variant = variant.name
            return model
        except (FileNotFoundError, OSError) as e:
            errors.append(str(e))
    if variant.embedded:
        folder = shelf_dir() / variant.embedded
        if (folder / CONFIG_NAME).is_file():
            model = load_folder(folder)
            model.variant = variant.name
            return model
        errors.append(f"the embedded copy {folder} is not there (it ships in a source checkout under models/ and in "
                      "the wheel under <prefix>/share/tokenizer-zoo/models/; reinstall with `pip install .`).")
    if pre is None and not variant.embedded:
        errors.append("it has no released weights (an architecture-only entry); train it with a recipe.")
    raise FileNotFoundError(f"No weights for {variant.name}: " + " ".join(errors))


# ----------------------------------------------------------------------------------------------
# model cards and publishing
# ----------------------------------------------------------------------------------------------
def model_card(
    model: Tokenizer,
    *,
    description: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    training: str | None = None,
    source: str | None = None,
    license: str | None = None,
) -> str:
    """A model card (README.md with YAML front matter) built with huggingface_hub.ModelCard."""
    from huggingface_hub import ModelCard, ModelCardData

    spec = registry.family(model.family) if model.family in registry.FAMILIES else None
    variant = None
    if spec and model.variant:
        variant = next((v for v in spec.variants if v.name == model.variant), None)
    lic = license or (variant.pretrained.license if variant and variant.pretrained else None) or "apache-2.0"
    data = ModelCardData(
        license=_hub_license(lic),
        library_name=LIBRARY_NAME,
        tags=["tokenizer", model.modality, model.family],
    )
    name = model.variant or model.family
    lines = [f"# {name}", ""]
    lines.append(description or (variant.description if variant else "") or f"A {model.family} tokenizer.")
    lines += ["", "## Facts", "", "| | |", "|---|---|"]
    lines.append(f"| family | {model.family} |")
    lines.append(f"| modality | {model.modality} |")
    lines.append(f"| parameters | {model.num_parameters() / 1e6:.2f} M |")
    lines.append(f"| codebook | {model.num_codebooks} x {model.codebook_size} |")
    rate_unit = {"audio": "tokens / s", "image": "tokens / image", "3d": "tokens / shape"}.get(model.modality, "tokens")
    lines.append(f"| token rate | {model.token_rate:g} {rate_unit} |")
    if source or (variant and variant.pretrained):
        lines.append(f"| source | {source or variant.pretrained.hub_id} |")
    if spec and spec.paper:
        lines.append(f"| paper | {spec.paper} |")
    lines.append(f"| license | {lic} |")
    if metrics:
        lines += ["", "## Measured", "", "| metric | value |", "|---|---|"]
        for k, v in metrics.items():
            lines.append(f"| {k} | {v} |")
    if training:
        lines += ["", "## Training", "", training]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import zoo",
        f'tok = zoo.load("{name}")',
        "tokens = tok.encode(x)",
        "recon = tok.decode(tokens)",
        "```",
        "",
    ]
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines))
    return str(card)


def _hub_license(lic: str) -> str:
    return lic.lower().replace(" ", "-")


def check_folder(directory: str | os.PathLike) -> Path:
    """Check that a folder is a loadable zoo model before it is published."""
    directory = Path(directory)
    load_folder(directory)  # raises with the reason when anything is off
    if not (directory / CARD_NAME).is_file():
        raise FileNotFoundError(f"{directory} has no {CARD_NAME} (model card); write one with save_pretrained.")
    return directory


def push_folder(directory: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str = "Upload zoo tokenizer", api=None) -> str:
    """Upload a zoo model folder (config.json, model.safetensors, README.md) to a hub repo."""
    from huggingface_hub import HfApi

    directory = check_folder(directory)
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(directory),
        repo_id=repo_id,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
        commit_message=commit_message,
    )
    return str(info)


def push_to_hub(model: Tokenizer, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str = "Upload zoo tokenizer", api=None, **card_fields) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, **card_fields)
        return push_folder(tmp, repo_id, private=private, token=token, commit_message=commit_message, api=api)
