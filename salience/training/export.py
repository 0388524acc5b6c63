"""Turning a training run's weights into a file to ship: fp16, and the sampler alongside.

``export_weights`` copies a checkpoint's tensors (floating ones cast to ``dtype``) and its
metadata, adds the metadata given (e.g. the scanpath sampler's parameters, the training data
it was fitted on), and writes the result atomically. The models load such files as float32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from salience.atomic import atomic_path
from salience.training.checkpoint import load_weights


def export_weights(
    checkpoint: str | Path,
    out: str | Path,
    dtype: torch.dtype = torch.float16,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``checkpoint``'s weights to ``out`` as ``dtype`` with merged metadata."""
    tensors, saved = load_weights(checkpoint)
    cast = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()
    }
    merged = {**saved, **(metadata or {})}
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file(cast, str(tmp), metadata=merged)
    return out
