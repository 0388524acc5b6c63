"""Dataset readers, one module per source format, all producing :class:`Dataset`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from salience.data.dataset import DataFormatError, Dataset, Fixations, Scanpath, Stimulus

# dataset name -> (module, loader function, fixed keyword arguments)
_LOADERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "osie": ("salience.data.osie", "load_osie", {}),
    "osie-mouse-lab": ("salience.data.osie", "load_osie_mouse", {"collection": "mouse_lab"}),
    "osie-mouse-amt": ("salience.data.osie", "load_osie_mouse", {"collection": "mouse_amt"}),
    "nus-scene": ("salience.data.nus_scene", "load_nus_scene", {}),
    "eyevido": ("salience.data.eyevido", "load_eyevido", {}),
    "salicon": ("salience.data.salicon", "load_salicon", {}),
    "mit1003": ("salience.data.mit1003", "load_mit1003", {}),
    "cat2000": ("salience.data.cat2000", "load_cat2000", {}),
    "csv": ("salience.data.csv", "load_csv", {}),
}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def load_dataset(name: str, root: str | Path, **kwargs: Any) -> Dataset:
    """Load the dataset format ``name`` from the folder (or file, for ``csv``) ``root``."""
    if name not in _LOADERS:
        raise KeyError(f"unknown dataset format {name!r}; known: {', '.join(dataset_names())}")
    module, function, fixed = _LOADERS[name]
    loader = getattr(importlib.import_module(module), function)
    return loader(root, **fixed, **kwargs)


__all__ = [
    "DataFormatError",
    "Dataset",
    "Fixations",
    "Scanpath",
    "Stimulus",
    "dataset_names",
    "load_dataset",
]
