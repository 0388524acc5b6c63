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
from collections.abc import Mapping
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
    """Every tensor of a safetensors file, on the CPU, as float32 where it holds floating point
    (shipped files are float16)."""
    path = _checked(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


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
    metadata: dict[str, str], key: str, config_class: type, where: str, kind: str, **fixed: Any
) -> Any:
    """The config dataclass stored by :func:`config_metadata`, with the ``fixed`` fields set
    (e.g. no download of pretrained weights: a checkpoint holds every weight); ``kind`` names
    the family in errors (e.g. ``"a SUM"``)."""
    fields = config_fields(metadata, key, where, kind)
    return build_config(config_class, {**fields, **fixed}, where)


@dataclasses.dataclass(frozen=True)
class CheckpointFormat:
    """How a family's weight files describe its network: its config dataclass stored under
    ``key``, the ``network`` class built from it, and the config fields a file overrides
    (``fixed``: e.g. no download of pretrained weights, the file holds every weight); ``kind``
    names the family in errors (e.g. ``"a SUM"``)."""

    key: str
    config_class: type
    network: type[nn.Module]
    kind: str
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def metadata(self, model: nn.Module, name: str) -> dict[str, str]:
        """The metadata describing ``model`` as the variant ``name`` (strings only)."""
        return config_metadata(name, self.key, model.config)

    def config(self, metadata: dict[str, str], where: str) -> Any:
        """The config stored by :meth:`metadata`; errors name ``where``."""
        return read_config(metadata, self.key, self.config_class, where, self.kind, **self.fixed)

    def load(self, path: str | Path) -> tuple[nn.Module, dict[str, str]]:
        """The network a file describes, with its weights, and the file's metadata."""
        metadata = read_metadata(path)
        network = self.network(self.config(metadata, str(path)))
        load_into(network, read_tensors(path), path)
        return network, metadata
