"""SUM's side of training: the data's kind as the condition, SUM's composite loss as the objective.

Each training source names its kind of data (``data.train[i].condition``, see
:class:`salience.data.conditions.Condition`); the model is told it per image. The loss is the
paper's (:mod:`salience.models.sum.criterion`) between the predicted density over the output
cells and the image's empirical density there, blurred by a Gaussian of ``target_sigma`` (a
fraction of the image width; 0.03 is about one degree of visual angle on OSIE). The fixations'
log-likelihood is logged beside it (``nll_bits``, not optimized) because it is what the
validation's information gain measures.

With an EfficientNet-Lite encoder and ``optim.backbone_lr: 0`` the pretrained CNN is frozen and
its features can be cached (``data.cache_features``); the projections, the conditioned Mamba
decoder and the head are trained.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from salience.data.conditions import Condition
from salience.models.losses import fixation_nll_bits
from salience.models.registry import create_model
from salience.models.sum import SumDensity, SumSaliency, checkpoint_metadata
from salience.models.sum.criterion import SUM_WEIGHTS, composite_loss, fixation_targets
from salience.training.task import Task

TARGET_SIGMA = 0.03  # of the image width: about 1 degree on OSIE (24 px per degree, 800 px)


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
        return SumDensity(model, {"model": self.config.name, **self.trained}, condition)

    def metadata(self, model: nn.Module) -> dict[str, str]:
        return {**checkpoint_metadata(model, self.config.name), **self.trained}
