"""Model configs stored in safetensors metadata, shared by the model families' checkpoints.

A checkpoint written by ``salience train`` (or ``salience export``) records its model's config
dataclass as JSON under a family key (``dense_config``, ``saltr_config``, ``sum_config``), so
that the file alone rebuilds the model. safetensors metadata holds strings only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file ({} if it has none)."""
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


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
