"""A trained :class:`SumSaliency` as a density model for one kind of data, and its files.

The network runs through the shared grid runner (:class:`~salience.models.density.GridDensity`:
the image resized with its aspect kept to about as many pixels as the training input, sides
multiples of 32; the stride-4 log-density upsampled to the image), told the ``condition`` it
predicts for: one of the kinds of data it was trained on, as its checkpoint records. Weight files
are safetensors whose metadata holds the variant's name, its :class:`SumConfig` and the trained
conditions, so the file alone rebuilds the model.
"""

from __future__ import annotations

import torch
from torch import nn

from salience.models.backbone import for_inference as backbone_for_inference
from salience.models.density import GridDensity
from salience.models.metadata import CheckpointFormat
from salience.models.sum.model import LiteEncoder, SumConfig, SumSaliency

# a SUM checkpoint holds every weight: no encoder download when it is rebuilt
FORMAT = CheckpointFormat(
    "sum_config",
    SumConfig,
    SumSaliency,
    "a SUM",
    {"encoder_pretrained": False, "encoder_checkpoint": None},
)


def checkpoint_metadata(model: SumSaliency, name: str) -> dict[str, str]:
    """safetensors metadata describing a SUM checkpoint (strings only)."""
    return FORMAT.metadata(model, name)


def config_from_metadata(metadata: dict[str, str], where: str) -> SumConfig:
    """The :class:`SumConfig` stored by :func:`checkpoint_metadata`."""
    return FORMAT.config(metadata, where)


class SumDensity(GridDensity):
    """Runs a :class:`SumSaliency` for one :class:`Condition`; log-densities at each image's
    size."""

    name = "sum"
    format = FORMAT

    @staticmethod
    def for_inference(model: nn.Module) -> None:
        if isinstance(model.encoder, LiteEncoder):
            backbone_for_inference(model.encoder.backbone)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, int(self.condition))["log_density"]  # (B, h', w')
