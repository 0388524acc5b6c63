"""A trained :class:`DenseSaliency` as a density model, and its weight files.

The image runs through the shared grid runner (:class:`~salience.models.density.GridDensity`:
resized with its aspect kept to about ``config.input_pixels`` pixels, the stride-4 log-density
upsampled to the image). Weights are safetensors whose metadata carries the model's name, its
:class:`DenseConfig`, the kinds of data it was trained on (``conditions``) and, for shipped
models, the scanpath sampler's parameters, so the file alone rebuilds the model; fp16 files are
loaded as float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from salience.data.conditions import Condition, choose, trained_conditions
from salience.models.dense.model import DenseConfig, DenseSaliency
from salience.models.density import GridDensity
from salience.models.metadata import (
    config_metadata,
    load_into,
    read_config,
    read_metadata,
    read_tensors,
)


def checkpoint_metadata(model: DenseSaliency, name: str) -> dict[str, str]:
    """safetensors metadata describing a dense checkpoint (strings only)."""
    return config_metadata(name, "dense_config", model.config)


def config_from_metadata(metadata: dict[str, str], where: str) -> DenseConfig:
    """The :class:`DenseConfig` stored by :func:`checkpoint_metadata`."""
    return read_config(
        metadata, "dense_config", DenseConfig, where, "a dense-model", backbone_pretrained=False
    )


def load_network(path: str | Path) -> tuple[DenseSaliency, dict[str, str]]:
    """The network a dense checkpoint describes, with its weights, and the file's metadata."""
    metadata = read_metadata(path)
    model = DenseSaliency(config_from_metadata(metadata, str(path)))
    load_into(model, read_tensors(path), path)
    return model, metadata


class DenseDensity(GridDensity):
    """Runs a :class:`DenseSaliency` on images; log-densities at each image's own size.
    ``condition`` is the kind of data predicted for (one the model was trained on)."""

    name = "dense"

    def __init__(
        self,
        model: DenseSaliency,
        metadata: dict[str, str] | None = None,
        condition: Condition | None = None,
    ) -> None:
        super().__init__(model, metadata)
        self.input_pixels = model.config.input_pixels
        self.flip_average = model.config.flip_average
        self.trained = trained_conditions(self.metadata, self.name)
        self.condition = choose(condition, self.trained, self.name)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, condition: Any = None, device: Any = None
    ) -> DenseDensity:
        """Rebuild the model a checkpoint describes, ready for inference."""
        model, metadata = load_network(path)
        model.eval().backbone.fold_batch_norm()  # inference only, see Backbone.fold_batch_norm
        model.to(memory_format=torch.channels_last)
        if device is not None:
            model.to(device)
        return cls(
            model, metadata, choose(condition, trained_conditions(metadata, str(path)), str(path))
        )

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["log_density"]  # (B, h', w')
