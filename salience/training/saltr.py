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

import numpy as np
import torch
from torch import Tensor, nn

from salience.data.dataset import Dataset
from salience.io.images import load_image
from salience.models.registry import create_model
from salience.models.saltr import SalTR, SetCriterion, weighted_set_loss
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
    sigmas: list[float],
    floor_weights: list[float],
) -> np.ndarray:
    """Summed log-density at the fixations for each (sigma, floor weight): (S, F).

    The same density as :func:`salience.models.saltr.postprocess.log_density` with the default
    prior, computed at the fixations only: Gaussians are separable, so their mass over the pixel
    grid is a product of 1-D sums and no full map is needed.
    """
    height, width = size
    pixel_x = torch.as_tensor(np.floor(xs) + 0.5, dtype=torch.float64)  # (M,) pixel centers
    pixel_y = torch.as_tensor(np.floor(ys) + 0.5, dtype=torch.float64)  # (M,)
    grid_x = torch.arange(width, dtype=torch.float64) + 0.5  # (W,)
    grid_y = torch.arange(height, dtype=torch.float64) + 0.5  # (H,)
    px = points[:, 0].double().cpu() * width  # (N,)
    py = points[:, 1].double().cpu() * height  # (N,)
    p = probs.double().cpu()  # (N,)
    spread = 0.25  # postprocess.center_bias_prior's default
    prior_x = torch.exp(-0.5 * ((grid_x / width - 0.5) / spread) ** 2)  # (W,)
    prior_y = torch.exp(-0.5 * ((grid_y / height - 0.5) / spread) ** 2)  # (H,)
    prior = (
        torch.exp(-0.5 * ((pixel_x / width - 0.5) / spread) ** 2)
        * torch.exp(-0.5 * ((pixel_y / height - 0.5) / spread) ** 2)
        / (prior_x.sum() * prior_y.sum())
    )  # (M,)
    result = np.zeros((len(sigmas), len(floor_weights)))
    for i, sigma in enumerate(sigmas):
        mass = (
            p
            * torch.exp(-0.5 * ((grid_x[None] - px[:, None]) / sigma) ** 2).sum(1)
            * torch.exp(-0.5 * ((grid_y[None] - py[:, None]) / sigma) ** 2).sum(1)
        ).sum()
        at_fix = (
            torch.exp(-0.5 * ((pixel_x[:, None] - px[None]) / sigma) ** 2)
            * torch.exp(-0.5 * ((pixel_y[:, None] - py[None]) / sigma) ** 2)
        ) @ p  # (M,)
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
    max_targets: int | None = None

    def build_model(self) -> SalTR:
        overrides = {**self.config.overrides, "image_size": self.input_size}
        model = create_model(self.config.name, **overrides)
        self.criterion = SetCriterion.from_config(model.config)
        self.max_targets = self.config.max_targets or model.config.num_queries
        return model

    def make_targets(
        self, points: np.ndarray, observers: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        points, weights = form_targets(
            points, observers, self.config.targets, self.max_targets, rng
        )
        return {"points": points, "weights": weights}

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
        return weighted_set_loss(
            self.criterion, outputs, batch["points"], batch["weights"], self.global_denominators
        )

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
            points, probs = density.predict(load_image(stim.path))
            scale = math.hypot(*stim.size) / math.hypot(*model.config.image_size)
            total += fixation_log_likelihoods(
                points,
                probs,
                xs,
                ys,
                stim.size,
                [s * scale for s in sigmas_at_input],
                list(FLOOR_WEIGHTS),
            )
        i, j = np.unravel_index(np.argmax(total), total.shape)
        self.sigma_px = sigmas_at_input[i]
        self.floor_weight = FLOOR_WEIGHTS[j]
        return {"sigma_px": self.sigma_px, "floor_weight": self.floor_weight}
