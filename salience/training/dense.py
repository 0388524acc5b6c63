"""The dense models' side of training: all fixations as targets, log-likelihood as the loss
(:mod:`salience.models.dense.criterion`). A model with viewing-time ``windows`` gets, per
fixation, its dwell in each window (:func:`salience.data.windows.dwell_times`) as targets.
Nothing is calibrated after training: the model's output already is a density.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from salience.data.windows import Window, dwell_times
from salience.models.dense import DenseDensity, DenseSaliency, checkpoint_metadata, dense_loss
from salience.models.registry import create_model
from salience.training.task import Task


class DenseTask(Task):
    """Training a :class:`DenseSaliency` by fixation log-likelihood."""

    windows: tuple[Window, ...] = ()  # the model's, set by build_model

    @property
    def needs_times(self) -> bool:
        return bool(self.windows)

    def build_model(self) -> DenseSaliency:
        overrides = {**self.config.overrides, "image_size": self.input_size}
        model = create_model(self.config.name, **overrides)
        self.ensemble_loss = model.config.ensemble_loss
        self.windows = tuple(Window(*w) for w in model.config.windows)
        return model

    def make_targets(
        self,
        points: np.ndarray,
        observers: np.ndarray,
        rng: np.random.Generator,
        times: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``points`` (M, 2) normalized (x, y); for a window model also ``dwell`` (M, K), the
        seconds each fixation spends in each window, from ``times`` (M, 2) onset, duration."""
        targets = {"points": points.astype(np.float32)}
        if self.windows:
            if times is None:
                raise ValueError("a model with viewing-time windows needs the fixations' times")
            targets["dwell"] = dwell_times(times[:, 0], times[:, 1], self.windows).astype(
                np.float32
            )
        return targets

    def encode(self, model: nn.Module, images: Tensor) -> list[Tensor]:
        return model.backbone(images)  # [(B, C_l, h_l, w_l)]

    def forward_features(self, model: nn.Module, features: list[Tensor], batch: dict) -> dict:
        return model(features=features, input_size=self.input_size)

    def loss(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        return {
            "loss": dense_loss(outputs, batch["points"], self.ensemble_loss, batch.get("dwell"))
        }

    def density(self, model: nn.Module, condition: int | None = None) -> DenseDensity:
        return DenseDensity(model, {"model": self.config.name, **self.trained}, condition)

    def metadata(self, model: nn.Module) -> dict[str, str]:
        return {**checkpoint_metadata(model, self.config.name), **self.trained}
