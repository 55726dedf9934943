"""zoo: the tokenizer model zoo. Discrete tokenizers for images, audio and 3D behind one API.

    import zoo
    tok = zoo.load("wavtokenizer-tiny-24k")
    tokens = tok.encode(audio, sample_rate=16000)
    audio = tok.decode(tokens)

The public names are resolved on first use (PEP 562), so `import zoo` stays fast and a command
such as `zoo list` does not pay for torch's import before it needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load": "zoo.hub",
    "convert": "zoo.hub",
    "list_models": "zoo.registry",
    "Tokenizer": "zoo.api",
    "Autoencoder": "zoo.api",
    "Tokens": "zoo.api",
    "TokenizerOutput": "zoo.api",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from zoo.api import Autoencoder, Tokenizer, TokenizerOutput, Tokens
    from zoo.hub import convert, load
    from zoo.registry import list_models


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
