"""SUM's side of training: the data's kind as the condition, SUM's composite loss as the objective.

Each training source names its kind of data (``data.train[i].condition``, see
:class:`salience.models.sum.Condition`); the model is told it per image. The loss is the paper's
``10 KL - 2 CC - SIM - NSS + 5 MSE`` (:func:`salience.models.losses.composite_loss`) between the
predicted density over the output cells and the image's empirical density there: its fixations
(all observers) counted per cell and blurred by a Gaussian of ``target_sigma`` (a fraction of the
image width; 0.03 is about one degree of visual angle on OSIE). The fixations' log-likelihood is
logged beside it (``nll_bits``, not optimized) because it is what the validation's information
gain measures.

With an EfficientNet-Lite encoder and ``optim.backbone_lr: 0`` the pretrained CNN is frozen and
its features can be cached (``data.cache_features``); the projections, the conditioned Mamba
decoder and the head are trained.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from salience.models.dense.model import fixation_nll_bits, gaussian_blur
from salience.models.losses import SUM_WEIGHTS, composite_loss
from salience.models.registry import create_model
from salience.models.sum import Condition, SumDensity, SumSaliency, checkpoint_metadata
from salience.training.task import Task

TARGET_SIGMA = 0.03  # of the image width: about 1 degree on OSIE (24 px per degree, 800 px)


def fixation_targets(
    points: list[Tensor], size: tuple[int, int], sigma_cells: float
) -> tuple[Tensor, Tensor]:
    """Normalized (x, y) fixations per image -> fixation counts per cell (B, h, w) and their
    Gaussian-blurred, normalized empirical density (B, h, w); an image without fixations gets
    the uniform density."""
    height, width = size
    counts = torch.zeros(len(points), height * width, device=points[0].device)
    for b, p in enumerate(points):
        col = (p[:, 0] * width).long().clamp(0, width - 1)  # (M,)
        row = (p[:, 1] * height).long().clamp(0, height - 1)  # (M,)
        counts[b].index_add_(0, row * width + col, torch.ones_like(col, dtype=counts.dtype))
    counts = counts.view(-1, 1, height, width)  # (B, 1, h, w)
    radius = max(1, min(math.ceil(4 * sigma_cells), max(size) - 1))
    blurred = gaussian_blur(counts, torch.tensor(sigma_cells, device=counts.device), radius)
    blurred = blurred.flatten(1) + (counts.flatten(1).sum(1, keepdim=True) == 0)  # (B, h * w)
    density = blurred / blurred.sum(dim=1, keepdim=True)
    return counts.view(-1, height, width), density.view(-1, height, width)


class SumTask(Task):
    """Training a :class:`SumSaliency` with SUM's loss, conditioned on each source's kind."""

    target_sigma = TARGET_SIGMA

    def build_model(self) -> SumSaliency:
        overrides = {**self.config.overrides, "image_size": self.input_size}
        return create_model(self.config.name, **overrides)

    def is_backbone(self, parameter_name: str) -> bool:
        """The pretrained encoder: the CNN of a Lite encoder (not its projections), or VMamba's
        patch embedding and stages."""
        return parameter_name.startswith(
            ("encoder.backbone.", "encoder.patch_embed.", "encoder.layers.")
        )

    def make_targets(
        self, points: np.ndarray, observers: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        return {"points": points.astype(np.float32)}  # (M, 2) normalized (x, y)

    @staticmethod
    def conditions(batch: dict, device: torch.device) -> Tensor:
        """The batch's conditions (B,); a source without one is eye tracking on natural images."""
        values = [Condition.EYE_NATURAL if c is None else int(c) for c in batch["condition"]]
        return torch.tensor(values, dtype=torch.long, device=device)

    def forward(self, model: nn.Module, batch: dict) -> dict:
        images = batch["image"]
        return model(images, self.conditions(batch, images.device))

    def encode(self, model: nn.Module, images: Tensor) -> list[Tensor]:
        return model.encoder.backbone(images)  # [(B, C_l, h_l, w_l)]

    def forward_features(self, model: nn.Module, features: list[Tensor], batch: dict) -> dict:
        condition = self.conditions(batch, features[0].device)
        return model(condition=condition, features=features, input_size=self.input_size)

    def loss(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        log_density = outputs["log_density"].float()  # (B, h, w)
        size = tuple(log_density.shape[-2:])
        sigma_cells = self.target_sigma * size[1]
        counts, reference = fixation_targets(batch["points"], size, sigma_cells)
        terms = composite_loss(log_density.exp(), reference, counts, SUM_WEIGHTS)
        terms["nll_bits"] = fixation_nll_bits(log_density.detach(), batch["points"])
        return terms

    def density(self, model: nn.Module, condition: int | None = None) -> SumDensity:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        condition = Condition.EYE_NATURAL if condition is None else condition
        return SumDensity(inner, {"model": self.config.name}, condition=condition)

    def metadata(self, model: nn.Module) -> dict[str, str]:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        return checkpoint_metadata(inner, self.config.name)
