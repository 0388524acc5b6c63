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

import torch
from torch import nn

from salience.data.conditions import Condition
from salience.models.backbone import for_inference as backbone_for_inference
from salience.models.dense.conditions import apply_condition, with_extra_conditions
from salience.models.dense.model import DenseConfig, DenseSaliency
from salience.models.density import GridDensity
from salience.models.metadata import CheckpointFormat

# a dense checkpoint holds every weight: no ImageNet download when it is rebuilt
FORMAT = CheckpointFormat(
    "dense_config", DenseConfig, DenseSaliency, "a dense-model", {"backbone_pretrained": False}
)


def checkpoint_metadata(model: DenseSaliency, name: str) -> dict[str, str]:
    """safetensors metadata describing a dense checkpoint (strings only)."""
    return FORMAT.metadata(model, name)


def config_from_metadata(metadata: dict[str, str], where: str) -> DenseConfig:
    """The :class:`DenseConfig` stored by :func:`checkpoint_metadata`."""
    return FORMAT.config(metadata, where)


class DenseDensity(GridDensity):
    """Runs a :class:`DenseSaliency` on images; log-densities at each image's own size.
    ``condition`` is the kind of data predicted for (one the model was trained on)."""

    name = "dense"
    format = FORMAT

    @classmethod
    def conditions_beside(cls, metadata: dict[str, str], path: str | Path) -> dict[str, str]:
        return with_extra_conditions(metadata, path)

    @classmethod
    def load_condition(cls, model: nn.Module, path: str | Path, condition: Condition) -> None:
        apply_condition(model, path, condition)

    @staticmethod
    def for_inference(model: nn.Module) -> None:
        backbone_for_inference(model.backbone)
        model.fuse_readouts()  # see DenseSaliency.fuse_readouts
        model.to(memory_format=torch.channels_last)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["log_density"]  # (B, h', w')
