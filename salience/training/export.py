"""Turning a training run's weights into a file to ship: fp16, and the sampler alongside.

``export_weights`` copies a checkpoint's tensors (floating ones cast to ``dtype``) and its
metadata, adds the metadata given (e.g. the scanpath sampler's parameters, the training data
it was fitted on), and writes the result atomically. The models load such files as float32.
With ``readouts_only`` only a dense model's readouts are written, with the digest of the backbone
they were trained on (:mod:`salience.models.dense.windows`): heads for a backbone shipped in
another file. ``flip_average`` switches test-time mirror averaging on or off in what the file
records (a dense model's config, a SalTR's post-processing; a choice made by cross-validation
after training).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from salience.io.atomic import atomic_path
from salience.models.backbone import weights_digest
from salience.training.checkpoint import load_weights


def export_weights(
    checkpoint: str | Path,
    out: str | Path,
    dtype: torch.dtype = torch.float16,
    metadata: dict[str, str] | None = None,
    readouts_only: bool = False,
    flip_average: bool | None = None,
) -> Path:
    """Write ``checkpoint``'s weights to ``out`` as ``dtype`` with merged metadata; with
    ``readouts_only`` the ``readouts.*`` tensors and ``backbone_sha256`` only; with
    ``flip_average`` that field of a dense model's config or a SalTR's post-processing set."""
    tensors, saved = load_weights(checkpoint)
    merged = {**saved, **(metadata or {})}
    if flip_average is not None:
        key = next((k for k in ("dense_config", "postprocess") if k in merged), None)
        if key is None:
            raise ValueError(f"{checkpoint}: mirror averaging is a dense model's or a SalTR's")
        merged[key] = json.dumps({**json.loads(merged[key]), "flip_average": flip_average})
    if readouts_only:
        backbone = {
            k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")
        }
        tensors = {k: v for k, v in tensors.items() if k.startswith("readouts.")}
        if not backbone or not tensors:
            raise ValueError(f"{checkpoint}: not a dense model (no backbone and readouts tensors)")
        merged["backbone_sha256"] = weights_digest(backbone)
    cast = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()
    }
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file(cast, str(tmp), metadata=merged)
    return out
