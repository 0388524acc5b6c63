"""A trained :class:`SumSaliency` as a density model for one kind of data, and its files.

The network runs through the shared grid runner (:class:`~salience.models.density.GridDensity`:
the image resized with its aspect kept to about as many pixels as the training input, sides
multiples of 32; the stride-4 log-density upsampled to the image), told the ``condition`` it
predicts for: one of the kinds of data it was trained on, as its checkpoint records. Weight files
are safetensors whose metadata holds the variant's name, its :class:`SumConfig` and the trained
conditions, so the file alone rebuilds the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from salience.data.conditions import Condition, choose, trained_conditions
from salience.models.density import GridDensity
from salience.models.metadata import (
    config_metadata,
    load_into,
    read_config,
    read_metadata,
    read_tensors,
)
from salience.models.sum.model import LiteEncoder, SumConfig, SumSaliency


def checkpoint_metadata(model: SumSaliency, name: str) -> dict[str, str]:
    """safetensors metadata describing a SUM checkpoint (strings only)."""
    return config_metadata(name, "sum_config", model.config)


def config_from_metadata(metadata: dict[str, str], where: str) -> SumConfig:
    """The :class:`SumConfig` stored by :func:`checkpoint_metadata`."""
    fixed = {"encoder_pretrained": False, "encoder_checkpoint": None}  # the file holds every weight
    return read_config(metadata, "sum_config", SumConfig, where, "a SUM", **fixed)


class SumDensity(GridDensity):
    """Runs a :class:`SumSaliency` for one :class:`Condition`; log-densities at each image's size."""

    name = "sum"

    def __init__(
        self,
        model: SumSaliency,
        metadata: dict[str, str] | None = None,
        condition: Condition | int | str | None = None,
    ) -> None:
        super().__init__(model, metadata)
        height, width = model.config.image_size
        self.input_pixels = height * width
        self.trained = trained_conditions(self.metadata, self.name)
        self.condition = choose(condition, self.trained, self.name)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, condition: Any = None, device: Any = None
    ) -> SumDensity:
        """Rebuild the model a checkpoint made by training describes, predicting for
        ``condition`` (default eye tracking on natural images)."""
        metadata = read_metadata(path)
        chosen = choose(condition, trained_conditions(metadata, str(path)), str(path))
        model = SumSaliency(config_from_metadata(metadata, str(path)))
        load_into(model, read_tensors(path), path)
        if isinstance(model.encoder, LiteEncoder):  # inference only, see Backbone.fold_batch_norm
            model.eval().encoder.backbone.fold_batch_norm()
        if device is not None:
            model.to(device)
        return cls(model, metadata, chosen)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, int(self.condition))["log_density"]  # (B, h', w')
