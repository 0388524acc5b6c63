"""More kinds of data for a dense checkpoint: a center-bias prior per condition, in a file beside
it.

Where people look on a web page differs from a photo less in what draws the eye (text, faces,
contrast) than in where they start and how far they go: pages are read from the top left, photos
from the center. A dense model's readouts end in a learned log center-bias prior (a 12 x 16 grid
over the image, :class:`~salience.models.dense.model.Readout`), so a condition can be added by
learning that prior alone on the new kind of data, every other weight shared.

A checkpoint ``model.safetensors`` predicts for the conditions its metadata records and, for each
file ``model-<kind>.safetensors`` beside it, for that kind too: such a file holds readout
tensors that replace the model's for that kind (a ``readouts.<k>.log_prior`` per readout, or
whole readouts), the sha256 of the backbone they were made on (refused on any other) and its
condition (``conditions`` metadata: a list of one kind). ``salience/training/condition_prior.py``
fits priors alone (:func:`write_condition_priors`); ``salience export --condition`` writes the
readouts of a run trained on the kind (:func:`write_condition`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from salience.data.conditions import (
    METADATA_KEY,
    Condition,
    condition_path,
    extra_conditions,
    trained_conditions,
)
from salience.io.atomic import atomic_path
from salience.models.dense.model import DenseSaliency
from salience.models.metadata import CheckpointError, read_metadata, read_tensors

PRIOR_KEY = "readouts.{}.log_prior"


def with_extra_conditions(metadata: dict[str, str], checkpoint: str | Path) -> dict[str, str]:
    """``metadata`` whose trained conditions include those the files beside it add."""
    trained = list(trained_conditions(metadata, str(checkpoint)))
    trained += [c for c in extra_conditions(checkpoint) if c not in trained]
    return {**metadata, METADATA_KEY: json.dumps([c.kind for c in trained])}


def apply_condition(model: DenseSaliency, checkpoint: str | Path, condition: Condition) -> None:
    """Load what the file of ``condition`` beside ``checkpoint`` holds (readout tensors: every
    readout's prior, or every readout whole) into ``model``; a :class:`CheckpointError` naming
    the file if it was made on another backbone or does not fit the readouts."""
    path = condition_path(checkpoint, condition)
    metadata = read_metadata(path)
    found = model.backbone.weights_sha256()
    if metadata.get("backbone_sha256") != found:
        raise CheckpointError(
            f"{path}: this {condition.kind} condition was made on another backbone "
            f"(sha256 {metadata.get('backbone_sha256', 'none')[:12]}, this model's {found[:12]})"
        )
    tensors = read_tensors(path)
    own = {k: v for k, v in model.state_dict().items() if k.startswith("readouts.")}
    unknown = sorted(set(tensors) - set(own))
    if unknown or not tensors:
        raise CheckpointError(
            f"{path}: holds tensors the model's readouts do not have: {unknown[:3] or 'none'}"
        )
    whole = {int(key.split(".")[1]) for key in tensors if not key.endswith(".log_prior")}
    missing = [str(k) for k in range(len(model.readouts)) if k not in whole]
    if whole and missing:
        raise CheckpointError(
            f"{path}: holds {len(whole)} whole readouts, the model has {len(model.readouts)}; "
            f"readouts {', '.join(missing)} would keep the weights of another kind of data"
        )
    for key, tensor in tensors.items():
        if tensor.shape != own[key].shape:
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, the model's "
                f"{tuple(own[key].shape)}"
            )
    with torch.no_grad():
        for key, tensor in tensors.items():
            own[key].copy_(tensor)


def write_condition(
    path: str | Path,
    model: DenseSaliency,
    tensors: dict[str, torch.Tensor],
    condition: Condition,
    provenance: dict[str, object],
) -> None:
    """Write ``tensors`` (readout tensors of ``model``) as the ``condition`` file of ``model``'s
    checkpoint, float16 as the shipped weights, atomically; ``provenance`` (how they were made)
    goes into the metadata."""
    metadata = {
        METADATA_KEY: json.dumps([condition.kind]),
        "backbone_sha256": model.backbone.weights_sha256(),
        "provenance": json.dumps(provenance),
    }
    halves = {k: v.detach().half().contiguous() for k, v in tensors.items()}
    with atomic_path(Path(path)) as temporary:
        save_file(halves, str(temporary), metadata=metadata)


def write_condition_priors(
    path: str | Path,
    model: DenseSaliency,
    priors: torch.Tensor,
    condition: Condition,
    provenance: dict[str, object],
) -> None:
    """Write ``priors`` (readouts, rows, cols) as the ``condition`` file of ``model``'s
    checkpoint: a prior per readout, every other weight shared."""
    if priors.shape != (len(model.readouts), *model.config.prior_grid):
        raise ValueError(
            f"priors must be ({len(model.readouts)}, {model.config.prior_grid}), "
            f"got {tuple(priors.shape)}"
        )
    tensors = {PRIOR_KEY.format(k): prior[None, None] for k, prior in enumerate(priors)}
    write_condition(path, model, tensors, condition, provenance)
