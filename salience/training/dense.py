"""The dense models' side of training: all fixations as targets, log-likelihood as the loss.

A dense model predicts a log-density over output cells; the loss is the negative log-likelihood
of every human fixation on the image (all observers pooled), in bits per fixation relative to
a uniform density, averaged over images (:func:`fixation_nll_bits`). A model with several
readouts is trained as its config's ``ensemble_loss`` says: each readout's own loss, averaged
(an ensemble trained in one run), or the loss of their mixture. A model with viewing-time
``windows`` (:class:`DenseConfig`) trains readout k on every fixation weighted by its dwell in
window k (:func:`salience.data.windows.dwell_times`), so each readout learns where the gaze
dwells during its window. Nothing is calibrated after training: the model's output already is
a density.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from salience.data.windows import Window, dwell_times
from salience.models.dense import DenseDensity, DenseSaliency, checkpoint_metadata
from salience.models.dense.model import fixation_nll_bits
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
        members = outputs["member_log_densities"].float()  # (B, K, h, w)
        if not self.windows and (members.shape[1] == 1 or self.ensemble_loss == "mixture"):
            return {"loss": fixation_nll_bits(outputs["log_density"].float(), batch["points"])}
        dwell = batch.get("dwell")  # window models: per image (M, K) seconds in each window
        each = [
            fixation_nll_bits(
                members[:, k], batch["points"], None if dwell is None else [d[:, k] for d in dwell]
            )
            for k in range(members.shape[1])
        ]
        return {"loss": torch.stack(each).mean()}

    def density(self, model: nn.Module, condition: int | None = None) -> DenseDensity:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        return DenseDensity(inner, {"model": self.config.name})

    def metadata(self, model: nn.Module) -> dict[str, str]:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        return checkpoint_metadata(inner, self.config.name)
