"""SalTR's side of training: point-set targets, the weighted set loss, and calibration.

Targets are at most K normalized points with relative weights (see
:mod:`salience.training.targets`), ordered for sequential matching. The loss is
:func:`salience.models.saltr.criterion.weighted_set_loss`, :class:`SetCriterion`'s generalized
to weighted targets.

Before each validation the Gaussian's sigma and the floor weight of the density are chosen by
log-likelihood on held-out training images (never on the validation split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from salience.data.dataset import Dataset
from salience.io.images import load_image
from salience.models.registry import create_model
from salience.models.saltr import (
    SalTR,
    SetCriterion,
    center_bias_prior,
    density_loss,
    gaussian_profiles,
    weighted_set_loss,
)
from salience.models.saltr.density import DEFAULT_FLOOR_WEIGHT, SaltrDensity, checkpoint_metadata
from salience.training.targets import form_targets
from salience.training.task import Task, unwrap

SIGMA_FACTORS = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)  # times the config's sigma
FLOOR_WEIGHTS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5)


def fixation_log_likelihoods(
    points: Tensor,
    probs: Tensor,
    xs: np.ndarray,
    ys: np.ndarray,
    size: tuple[int, int],
    sigmas: Sequence[float | Tensor],
    floor_weights: list[float],
    normalize_each: bool = False,
) -> np.ndarray:
    """Summed log-density at the fixations for each (sigma, floor weight): (S, F).

    The same density as :func:`salience.models.saltr.postprocess.log_density` with the default
    prior, computed at the fixations only: Gaussians are separable, so their mass over the pixel
    grid is a product of 1-D sums and no map of the mixture is needed. A sigma is one for all
    points or one per point (N,); ``normalize_each`` as in ``log_density``.
    """
    height, width = size
    col = torch.as_tensor(np.floor(xs), dtype=torch.long).clamp(0, width - 1)  # (M,) pixels
    row = torch.as_tensor(np.floor(ys), dtype=torch.long).clamp(0, height - 1)  # (M,)
    px = points[:, 0].double().cpu() * width  # (N,)
    py = points[:, 1].double().cpu() * height  # (N,)
    p = probs.double().cpu()  # (N,)
    prior = center_bias_prior(size, dtype=torch.float64)[row, col]  # (M,)
    result = np.zeros((len(sigmas), len(floor_weights)))
    for i, sigma in enumerate(sigmas):
        sd = sigma.double().cpu() if isinstance(sigma, Tensor) else sigma
        gx = gaussian_profiles(px, sd, width)  # (N, W), peak 1
        gy = gaussian_profiles(py, sd, height)  # (N, H)
        mass_x, mass_y = gx.sum(1), gy.sum(1)  # (N,)
        weights = p / (mass_x * mass_y) if normalize_each else p  # (N,)
        mass = (weights * mass_x * mass_y).sum()
        at_fix = weights @ (gx[:, col] * gy[:, row])  # (M,)
        sal = at_fix / mass if mass > 0 else prior
        for j, f in enumerate(floor_weights):
            result[i, j] = torch.log((1 - f) * sal + f * prior).sum().item()
    return result


class _Given(nn.Module):
    """Stands in for a frozen backbone: returns features computed beforehand."""

    def __init__(self, features: list[Tensor]) -> None:
        super().__init__()
        self.features = features

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.features


class SaltrTask(Task):
    """Training SalTR: point targets, weighted set loss, calibrated density.

    Queries are matched to targets as the model's config says (``matching``): Hungarian for
    set prediction, sequential (query i with target point i) for the scanpath variant, trained
    on ordered targets (``model.targets: scanpath``).
    """

    sigma_px: float | None = None  # chosen by calibrate
    floor_weight: float = DEFAULT_FLOOR_WEIGHT
    criterion: SetCriterion | None = None  # set by build_model
    weight_density: float = 0.0  # set by build_model: the density head's loss weight
    max_targets: int | None = None

    def build_model(self) -> SalTR:
        overrides = {**self.config.overrides, "image_size": self.input_size}
        model = create_model(self.config.name, **overrides)
        self.weight_density = model.config.weight_density
        self.criterion = SetCriterion.from_config(model.config)
        self.max_targets = self.config.max_targets or model.config.num_queries
        return model

    def make_targets(
        self, points: np.ndarray, observers: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        targets, weights = form_targets(
            points, observers, self.config.targets, self.max_targets, rng
        )
        # the density head is trained on all the image's fixations, not the matched set
        return {"points": targets, "weights": weights, "fixations": points.astype(np.float32)}

    def encode(self, model: nn.Module, images: Tensor) -> list[Tensor]:
        return model.backbone(images)  # [(B, C_l, H_l, W_l)]

    def forward_features(self, model: nn.Module, features: list[Tensor], batch: dict) -> dict:
        """SalTR's forward with its backbone stood in for by the given features."""
        inner = unwrap(model)
        backbone = inner.backbone
        inner.backbone = _Given(features)
        try:
            return model(features[-1])
        finally:
            inner.backbone = backbone

    def loss(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        losses = weighted_set_loss(
            self.criterion, outputs, batch["points"], batch["weights"], self.global_denominators
        )
        if "pred_sigmas" in outputs:
            losses["loss_density"] = density_loss(outputs, batch["fixations"], self.input_size)
            losses["loss"] = losses["loss"] + self.weight_density * losses["loss_density"]
        return losses

    def density(self, model: nn.Module, condition: int | None = None) -> SaltrDensity:
        return SaltrDensity(model, sigma_px=self.sigma_px, floor_weight=self.floor_weight)

    def metadata(self, model: nn.Module) -> dict[str, str]:
        metadata = checkpoint_metadata(model, self.config.name, self.sigma_px, self.floor_weight)
        return {**metadata, **self.trained}

    def calibrate(self, model: nn.Module, dataset: Dataset) -> dict[str, float]:
        """Choose sigma and floor weight by the fixations' log-likelihood on ``dataset``."""
        if len(dataset) == 0:
            return {}
        density = SaltrDensity(model)
        reference = model.config.sigma_px
        sigmas_at_input = [reference * f for f in SIGMA_FACTORS]
        total = np.zeros((len(SIGMA_FACTORS), len(FLOOR_WEIGHTS)))
        for stim in dataset:
            xs, ys = stim.fixations()
            if len(xs) == 0:
                continue
            # the density head's sigmas are scaled by each factor, the paper's one sigma replaced
            points, weights, own = density.mixture(load_image(stim.path))
            scale = math.hypot(*stim.size) / math.hypot(*model.config.image_size)
            factors = [s * scale for s in sigmas_at_input]
            if own is not None:
                factors = [own * (f / reference) for f in factors]
            total += fixation_log_likelihoods(
                points, weights, xs, ys, stim.size, factors, list(FLOOR_WEIGHTS), own is not None
            )
        i, j = np.unravel_index(np.argmax(total), total.shape)
        self.sigma_px = sigmas_at_input[i]
        self.floor_weight = FLOOR_WEIGHTS[j]
        return {"sigma_px": self.sigma_px, "floor_weight": self.floor_weight}
