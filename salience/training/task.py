"""The small interface between the generic training loop and one model family.

The loop owns data loading, optimization, precision, distribution, checkpoints and validation;
a :class:`Task` owns what differs per model: building it, turning fixations into its targets,
its loss, the density it predicts for validation, the metadata stored with its weights and,
optionally, how to run it from precomputed frozen-backbone features.
SalTR's task lives in :mod:`salience.training.saltr`, the dense models' in
:mod:`salience.training.dense`, SUM's in :mod:`salience.training.sum`; a family names its task
in its record (:data:`salience.models.registry.FAMILIES`). The loop hands a task the network
itself, never its DistributedDataParallel wrapper, except where a method says ``model`` may be
DDP (the forward passes, whose gradient hooks DDP needs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from salience.data.conditions import METADATA_KEY, Condition, encode_trained
from salience.data.dataset import Dataset
from salience.models.base import DensityModel
from salience.models.registry import family_of
from salience.training.config import ModelConfig


def _unchanged(counts: Tensor) -> Tensor:
    return counts


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class Task(ABC):
    """Model-specific parts of training. ``input_size`` is the (height, width) of training
    images; ``conditions`` the kinds of data of the training sources (None: eye tracking on
    natural images), recorded with the weights so that a model refuses the kinds it never saw."""

    # whether make_targets also takes ``times``: (M, 2) onsets and durations in seconds
    needs_times: bool = False

    def __init__(
        self,
        config: ModelConfig,
        input_size: tuple[int, int],
        conditions: Sequence[Condition | int | None] = (None,),
    ) -> None:
        self.config = config
        self.input_size = tuple(input_size)
        self.trained = {METADATA_KEY: encode_trained(conditions)}
        # A loss that divides a sum over its batch by a count (of matched points, of weights)
        # divides by ``global_denominators(counts)``: the counts themselves in one process;
        # under DDP (set by the loop) the counts over the whole global batch divided by the
        # number of processes, so that the averaged gradients are the whole batch's.
        self.global_denominators: Callable[[Tensor], Tensor] = _unchanged

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model whose forward takes (B, 3, h, w) images in [0, 1]."""

    def is_backbone(self, parameter_name: str) -> bool:
        """Whether a parameter belongs to the pretrained backbone (lower learning rate)."""
        return parameter_name.startswith("backbone.")

    @abstractmethod
    def make_targets(
        self, points: np.ndarray, observers: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """One image's target arrays from its normalized fixations (M, 2) and observers (M,)
        (and, for a task that :attr:`needs_times`, the keyword ``times``)."""

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """The model's outputs on a batch's images (``model`` may be DDP)."""
        return model(batch["image"])

    def encode(self, model: nn.Module, images: Tensor) -> list[Tensor]:
        """The frozen backbone's feature maps of (B, 3, h, w) images, for feature caching."""
        raise NotImplementedError(f"{type(self).__name__} cannot precompute backbone features")

    def forward_features(self, model: nn.Module, features: list[Tensor], batch: dict) -> dict:
        """The model's outputs from a batch's features made by :meth:`encode` (``model`` may
        be DDP)."""
        raise NotImplementedError(f"{type(self).__name__} cannot run from precomputed features")

    @abstractmethod
    def loss(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        """Named losses of a batch; ``loss`` is the one to minimize."""

    @abstractmethod
    def density(self, model: nn.Module, condition: int | None = None) -> DensityModel:
        """The model (in eval mode) as a density model for validation; ``condition`` is the
        validation data's kind, which only conditioned models use."""

    @abstractmethod
    def metadata(self, model: nn.Module) -> dict[str, str]:
        """Strings stored with the weights so that the registry can rebuild the model (the
        family's config and :attr:`trained`)."""

    def calibrate(self, model: nn.Module, dataset: Dataset) -> dict[str, float]:
        """Fit post-processing on held-out images before validation; returns what was chosen."""
        return {}


def create_task(
    config: ModelConfig,
    input_size: tuple[int, int],
    conditions: Sequence[Condition | int | None] = (None,),
) -> Task:
    """The training task of the family the model ``config.name`` belongs to."""
    return family_of(config.name).task_class()(config, input_size, conditions)
