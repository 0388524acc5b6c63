"""A trained :class:`SumSaliency` as a :class:`DensityModel` for one kind of data, and its files.

The network runs like the dense model (:class:`~salience.models.dense.DenseDensity`: the image
resized with its aspect kept to about as many pixels as the training input, sides multiples of
32; the stride-4 log-density upsampled to the image), told the ``condition`` it predicts for.
Weight files are safetensors whose metadata holds the variant's name and its
:class:`SumConfig`, so the file alone rebuilds the model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from salience.models.dense.density import DenseDensity
from salience.models.dense.model import input_size_for
from salience.models.metadata import config_fields, read_metadata
from salience.models.sum.blocks import Condition
from salience.models.sum.model import LiteEncoder, SumConfig, SumSaliency


def checkpoint_metadata(model: SumSaliency, name: str) -> dict[str, str]:
    """safetensors metadata describing a SUM checkpoint (strings only)."""
    return {"model": name, "sum_config": json.dumps(dataclasses.asdict(model.config))}


def config_from_metadata(metadata: dict[str, str], where: str) -> SumConfig:
    """The :class:`SumConfig` stored by :func:`checkpoint_metadata`."""
    fields = config_fields(metadata, "sum_config", where, "a SUM")
    fields["encoder_pretrained"] = False  # the checkpoint holds every weight
    fields["encoder_checkpoint"] = None
    return SumConfig(**fields)


class SumDensity(DenseDensity):
    """Runs a :class:`SumSaliency` for one :class:`Condition`; log-densities at each image's size."""

    name = "sum"

    def __init__(
        self,
        model: SumSaliency,
        metadata: dict[str, str] | None = None,
        condition: int = Condition.EYE_NATURAL,
    ) -> None:
        super().__init__(model, metadata)  # type: ignore[arg-type]
        self.condition = Condition(condition)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        condition: int = Condition.EYE_NATURAL,
        device: torch.device | str | None = None,
    ) -> SumDensity:
        """Rebuild the model a checkpoint made by training describes."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        metadata = read_metadata(path)
        model = SumSaliency(config_from_metadata(metadata, str(path)))
        model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        if isinstance(model.encoder, LiteEncoder):  # inference only, see Backbone.fold_batch_norm
            model.eval().encoder.backbone.fold_batch_norm()
        if device is not None:
            model.to(device)
        return cls(model, metadata, condition)

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        height, width = self.model.config.image_size
        return input_size_for(size, height * width)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, int(self.condition))["log_density"]  # (B, h', w')
