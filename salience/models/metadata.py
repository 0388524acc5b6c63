"""Checkpoint files: model configs stored in safetensors metadata, and weights loaded with clear
errors. Shared by the model families.

A checkpoint written by ``salience train`` (or ``salience export``) records its model's config
dataclass as JSON under a family key (``dense_config``, ``saltr_config``, ``sum_config``), so
that the file alone rebuilds the model. safetensors metadata holds strings only. A file that is
missing, damaged or not safetensors, or whose tensors do not fit the model, is a
:class:`CheckpointError` naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn


class CheckpointError(ValueError):
    """A weight file that cannot be used; the message names the file and the reason."""


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file ({} if it has none)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_tensors(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file, as float32 where it holds floating point (shipped
    files are float16)."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: its tensors cannot be read ({exc})") from exc
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_state(network: nn.Module, tensors: dict[str, Tensor], where: str | Path) -> None:
    """Load ``tensors`` into ``network``, every key and shape matching; a short error naming
    ``where`` and the first mismatches otherwise (not PyTorch's dump of every key)."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshaped = [
        f"{k} {tuple(tensors[k].shape)} for {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    problems = [
        (f"{len(missing)} missing", missing),
        (f"{len(unexpected)} unexpected", unexpected),
        (f"{len(misshaped)} of the wrong shape", misshaped),
    ]
    found = [f"{label} (e.g. {', '.join(items[:3])})" for label, items in problems if items]
    if found:
        raise CheckpointError(f"{where}: its tensors do not fit the model: {'; '.join(found)}")
    network.load_state_dict(tensors, strict=True)


def config_fields(metadata: dict[str, str], key: str, where: str, kind: str) -> dict[str, Any]:
    """The config fields stored under ``key``, JSON lists turned back into tuples (the config
    dataclasses hold tuples); an error naming ``where`` if the metadata has no such config
    (``kind``, e.g. ``"a SUM"``, says what it should have been)."""
    if key not in metadata:
        raise CheckpointError(f"{where}: not {kind} checkpoint (no {key} in its metadata)")
    try:
        fields = json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{where}: its {key} metadata is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise CheckpointError(f"{where}: its {key} metadata is not a JSON object")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def build_config(config_class: type, fields: dict[str, Any], where: str) -> Any:
    """``config_class(**fields)``, with unknown fields or invalid values as a CheckpointError
    naming ``where``."""
    try:
        return config_class(**fields)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: its config does not describe a model: {exc}") from exc


def config_metadata(name: str, key: str, config: Any) -> dict[str, str]:
    """The metadata recording a model's variant ``name`` and its config dataclass under ``key``."""
    return {"model": name, key: json.dumps(dataclasses.asdict(config))}


def read_config(
    metadata: dict[str, str], key: str, config_class: type, where: str, **fixed: Any
) -> Any:
    """The config dataclass stored by :func:`config_metadata`, with the ``fixed`` fields set
    (e.g. no download of pretrained weights: a checkpoint holds every weight)."""
    kind = config_class.__name__.removesuffix("Config")
    fields = config_fields(metadata, key, where, f"a {kind}")
    return build_config(config_class, {**fields, **fixed}, where)
