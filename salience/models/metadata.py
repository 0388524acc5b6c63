"""Model configs stored in safetensors metadata, shared by the model families' checkpoints.

A checkpoint written by ``salience train`` (or ``salience export``) records its model's config
dataclass as JSON under a family key (``dense_config``, ``saltr_config``, ``sum_config``), so
that the file alone rebuilds the model. safetensors metadata holds strings only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn


class CheckpointError(ValueError):
    """A weights file that cannot be used: missing, damaged, or not for this model; the message
    names the file and the problem."""


def _checked(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a .safetensors weights file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file ({} if it has none)."""
    path = _checked(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_tensors(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file, on the CPU."""
    path = _checked(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_into(model: nn.Module, tensors: dict[str, Tensor], path: str | Path) -> None:
    """``model.load_state_dict(tensors, strict=True)``, its failure told in one line naming
    ``path``: how many tensors are missing, unexpected or of another shape, with examples."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    reshaped = [
        f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    problems = [
        f"{len(found)} {what} (e.g. {', '.join(found[:3])})"
        for what, found in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("of another shape, file vs model", reshaped),
        )
        if found
    ]
    if problems:
        raise CheckpointError(
            f"{path}: the weights do not fit the {type(model).__name__} model: "
            + "; ".join(problems)
        )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: the weights do not fit the model ({first})") from exc


def config_fields(metadata: dict[str, str], key: str, where: str, kind: str) -> dict[str, Any]:
    """The config fields stored under ``key``, JSON lists turned back into tuples (the config
    dataclasses hold tuples); an error naming ``where`` if the metadata has no such config
    (``kind``, e.g. ``"a SUM"``, says what it should have been)."""
    if key not in metadata:
        raise ValueError(f"{where}: not {kind} checkpoint (no {key} in its metadata)")
    try:
        fields = json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: its {key} metadata is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: its {key} metadata is not a JSON object")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
