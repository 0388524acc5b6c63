"""Dataset readers, one module per source format, all producing :class:`Dataset`."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salience.data.dataset import DataFormatError, Dataset, Fixations, Scanpath, Stimulus


@dataclass(frozen=True)
class _Reader:
    """A reader function and what it accepts.

    ``geometry`` says where pixels per degree come from: ``"known"`` (the dataset's published
    setup; a value given overrides it), ``"required"`` (the caller must give it) or a sentence
    saying why it is fixed. ``options`` maps each further keyword to its type.
    """

    module: str
    function: str
    fixed: dict[str, Any] = field(default_factory=dict)
    geometry: str = "known"
    options: dict[str, type] = field(default_factory=dict)


_NUS_GEOMETRY = (
    "its images were shown rescaled to one display, so pixels per degree follow each image's "
    "size (the longer side spans 33.3 degrees)"
)
_READERS: dict[str, _Reader] = {
    "osie": _Reader("salience.data.osie", "load_osie"),
    "osie-mouse-lab": _Reader("salience.data.osie", "load_osie_mouse", {"collection": "mouse_lab"}),
    "osie-mouse-amt": _Reader("salience.data.osie", "load_osie_mouse", {"collection": "mouse_amt"}),
    "nus-scene": _Reader("salience.data.nus_scene", "load_nus_scene", geometry=_NUS_GEOMETRY),
    "eyevido": _Reader("salience.data.eyevido", "load_eyevido"),
    "salicon": _Reader(
        "salience.data.salicon", "load_salicon", options={"annotations": str, "images": str}
    ),
    "mit1003": _Reader(
        "salience.data.mit1003", "load_mit1003", options={"include_initial_fixation": bool}
    ),
    "cat2000": _Reader("salience.data.cat2000", "load_cat2000"),
    "csv": _Reader(
        "salience.data.csv", "load_csv", geometry="required", options={"images": str, "kind": str}
    ),
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_READERS)


def dataset_options(name: str) -> dict[str, type]:
    """The further options (beyond pixels per degree) the reader ``name`` takes, with types."""
    return dict(_reader(name).options)


def _reader(name: str) -> _Reader:
    if name not in _READERS:
        raise KeyError(f"unknown dataset format {name!r}; known: {', '.join(dataset_names())}")
    return _READERS[name]


def parse_dataset_options(name: str, items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` texts (as typed on the command line) as keyword arguments for the reader
    ``name``, each converted to the option's type; an unknown key or bad value is a ValueError
    listing what the reader takes."""
    known = _reader(name).options
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ValueError(
                f"--dataset-option {item!r}: the {name} reader takes KEY=VALUE with KEY one of: "
                f"{listed}"
            )
        kind = known[key]
        if kind is bool:
            if value.strip().lower() not in _TRUE + _FALSE:
                raise ValueError(f"--dataset-option {item!r}: {key} is true or false")
            options[key] = value.strip().lower() in _TRUE
        else:
            options[key] = kind(value)
    return options


def load_dataset(
    name: str, root: str | Path, pixels_per_degree: float | None = None, **options: Any
) -> Dataset:
    """Load the dataset format ``name`` from the folder (or file, for ``csv``) ``root``.

    ``pixels_per_degree`` overrides the dataset's known viewing geometry (the ``csv`` reader needs
    it); ``options`` are the reader's own (:func:`dataset_options`). What a reader does not take
    is a ValueError saying why, not a TypeError.
    """
    reader = _reader(name)
    unknown = sorted(set(options) - set(reader.options))
    if unknown:
        listed = ", ".join(sorted(reader.options)) or "none"
        raise ValueError(
            f"the {name} reader takes no option {', '.join(unknown)} (it takes: {listed})"
        )
    if pixels_per_degree is not None:
        if not (pixels_per_degree > 0 and math.isfinite(pixels_per_degree)):
            raise ValueError(
                f"pixels per degree must be a positive number, got {pixels_per_degree}"
            )
        if reader.geometry not in ("known", "required"):
            raise ValueError(f"{name}: pixels per degree cannot be set: {reader.geometry}")
        options["pixels_per_degree"] = pixels_per_degree
    elif reader.geometry == "required":
        raise ValueError(
            f"the {name} reader needs the pixels per degree of visual angle of the experiment "
            "(--pixels-per-degree): it follows from the screen's size and resolution and the "
            "viewing distance"
        )
    loader = getattr(importlib.import_module(reader.module), reader.function)
    return loader(root, **reader.fixed, **options)


__all__ = [
    "DataFormatError",
    "Dataset",
    "Fixations",
    "Scanpath",
    "Stimulus",
    "dataset_names",
    "dataset_options",
    "load_dataset",
    "parse_dataset_options",
]
