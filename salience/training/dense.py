"""The dense models' side of training: all fixations as targets, log-likelihood as the loss.

A dense model predicts a log-density over output cells; the loss is the negative log-likelihood
of every human fixation on the image (all observers pooled), in bits per fixation relative to
a uniform density, averaged over images (:func:`fixation_nll_bits`). A model with several
readouts is trained as its config's ``ensemble_loss`` says: each readout's own loss, averaged
(an ensemble trained in one run), or the loss of their mixture. Nothing is calibrated after
training: the model's output already is a density.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from salience.models.dense import DenseDensity, DenseSaliency, checkpoint_metadata
from salience.models.dense.model import fixation_nll_bits
from salience.registry import create_model
from salience.training.task import Task


class DenseTask(Task):
    """Training a :class:`DenseSaliency` by fixation log-likelihood."""

    def build_model(self) -> DenseSaliency:
        overrides = {**self.config.overrides, "image_size": self.input_size}
        model = create_model(self.config.name, **overrides)
        self.ensemble_loss = model.config.ensemble_loss
        return model

    def make_targets(
        self, points: np.ndarray, observers: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        return {"points": points.astype(np.float32)}  # (M, 2) normalized (x, y)

    def encode(self, model: nn.Module, images: Tensor) -> list[Tensor]:
        return model.backbone(images)  # [(B, C_l, h_l, w_l)]

    def forward_features(self, model: nn.Module, features: list[Tensor], batch: dict) -> dict:
        return model(features=features, input_size=self.input_size)

    def loss(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        members = outputs["member_log_densities"].float()  # (B, K, h, w)
        if members.shape[1] == 1 or self.ensemble_loss == "mixture":
            return {"loss": fixation_nll_bits(outputs["log_density"].float(), batch["points"])}
        each = [fixation_nll_bits(members[:, k], batch["points"]) for k in range(members.shape[1])]
        return {"loss": torch.stack(each).mean()}

    def density(self, model: nn.Module, condition: int | None = None) -> DenseDensity:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        return DenseDensity(inner, {"model": self.config.name})

    def metadata(self, model: nn.Module) -> dict[str, str]:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        return checkpoint_metadata(inner, self.config.name)
