"""salience: predict where people look in an image.

The names below load on first use, so ``import salience`` (and ``salience --help``) stays light:
no torch until a model runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Predictor": "salience.predictor",
    "Prediction": "salience.predictor",
    "PredictionItem": "salience.predictor",
    "create_model": "salience.models.registry",
    "list_models": "salience.models.registry",
    "register_model": "salience.models.registry",
    "load_checkpoint": "salience.models.registry",
    "load_pretrained": "salience.models.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'salience' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
