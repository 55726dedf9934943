"""The hold-out split of zoo's real data, declared once in recipes/splits.yaml.

Training data preparation leaves these items out and evaluation (`zoo eval --split KIND`) measures on
them, so that every family's held-out numbers come from the same photos, speech clips and meshes.

    heldout("photos")  -> ("astronaut", "coffee", ...)
    is_heldout("en/alpha/a.ogg", heldout("speech"))  -> True
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

SPLITS_FILE = Path(__file__).resolve().parents[2] / "recipes" / "splits.yaml"  # in a source checkout
KINDS = ("photos", "speech", "meshes")


def heldout(kind: str, path: str | Path | None = None) -> tuple[str, ...]:
    """The held-out entries of one kind (photos | speech | meshes) from the split file."""
    import yaml

    if kind not in KINDS:
        raise ValueError(f"The split has kinds {', '.join(KINDS)}; got {kind!r}.")
    path = Path(path) if path is not None else SPLITS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No split file at {path}; it ships in the source checkout (recipes/splits.yaml).")
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get(kind)
    if not entries or not all(isinstance(e, str) for e in entries):
        raise ValueError(f"{path} must list the held-out {kind} as names under `{kind}:`.")
    return tuple(entries)


def is_heldout(key: str, entries: tuple[str, ...]) -> bool:
    """Whether an item key (a path relative to the data folder) is held out: its stem is an entry
    (`heldout/astronaut.png`, `astronaut_192.png` is not) or a folder on its path is (`en/alpha/a.ogg`)."""
    p = PurePosixPath(key)
    return p.stem in entries or any(part in entries for part in p.parts[:-1])


__all__ = ["heldout", "is_heldout", "KINDS", "SPLITS_FILE"]
