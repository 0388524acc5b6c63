"""A trained SalTR as a :class:`DensityModel`: image in, log-density over its pixels out.

The image is resized to the model's input size (the backbone owns the ImageNet normalization),
the predicted fixations become probability-weighted Gaussians at the image's own size (sigma
scaled with the image diagonal) mixed with a small center-bias floor, as in ``postprocess.py``;
with the density head, Gaussians of each query's own width and weight.

A model trained with sequential matching on ordered scanpaths also gives its predicted scanpath
(:meth:`SaltrDensity.scanpath`, see ``postprocess.scanpath_from_outputs``).

With ``flip_average`` the density is the mixture of the image's and its mirror image's (the
mirrored prediction's points mirrored back): twice the network's work, one batch of two.

Trained weights are a safetensors file whose metadata carries everything needed to rebuild the
model: the registered variant name, the full :class:`SaltrConfig` and the post-processing
parameters (see :func:`checkpoint_metadata`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from salience.data.conditions import choose, trained_conditions
from salience.models.backbone import for_inference as backbone_for_inference
from salience.models.base import DensityModel
from salience.models.metadata import (
    build_config,
    config_fields,
    config_metadata,
    load_into,
    read_metadata,
    read_tensors,
)
from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.model import SalTR, build_saltr
from salience.models.saltr.postprocess import (
    fixation_points,
    log_density,
    scaled_sigma,
    scanpath_from_outputs,
)

DEFAULT_FLOOR_WEIGHT = 1e-2


def checkpoint_metadata(
    model: SalTR, name: str, sigma_px: float | None = None, floor_weight: float | None = None
) -> dict[str, str]:
    """safetensors metadata describing a SalTR checkpoint (strings only, as the format wants)."""
    postprocess = {
        "sigma_px": model.config.sigma_px if sigma_px is None else sigma_px,
        "floor_weight": DEFAULT_FLOOR_WEIGHT if floor_weight is None else floor_weight,
    }
    return {
        **config_metadata(name, "saltr_config", model.config),
        "postprocess": json.dumps(postprocess),
    }


def config_from_metadata(metadata: dict[str, str], where: str = "checkpoint") -> SaltrConfig:
    """The :class:`SaltrConfig` stored in a checkpoint's metadata, backbone download off.

    Checkpoints written before ``matching`` existed carry ``no_matching`` instead (True was
    the index-pairing ablation, now ``matching="sequential"``).
    """
    fields = config_fields(metadata, "saltr_config", where, "a SalTR")
    fields["backbone_pretrained"] = False
    if "no_matching" in fields:
        fields["matching"] = "sequential" if fields.pop("no_matching") else "hungarian"
    return build_config(SaltrConfig, fields, where)


class SaltrDensity(DensityModel):
    """Runs a SalTR on an image and returns the post-processed log-density at the image's size.

    ``sigma_px`` is the Gaussian's sigma at the model's input size (default: the config's);
    ``floor_weight`` is the share of the broad center-bias prior that keeps the density finite;
    ``flip_average`` mixes in the mirror image's prediction (the density only: the points and the
    scanpath are the image's own).
    """

    name = "saltr"

    def __init__(
        self,
        model: SalTR,
        sigma_px: float | None = None,
        floor_weight: float = DEFAULT_FLOOR_WEIGHT,
        flip_average: bool = False,
    ) -> None:
        self.model = model.eval()
        self.sigma_px = model.config.sigma_px if sigma_px is None else sigma_px
        self.floor_weight = floor_weight
        self.flip_average = flip_average
        self.metadata: dict[str, str] = {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, condition: Any = None, device: Any = None
    ) -> SaltrDensity:
        """Rebuild the model a checkpoint describes and load its weights (the checkpoint holds
        all of them: the backbone's ImageNet weights are not fetched). SalTR has no condition
        input: ``condition`` may only name the kind of data it was trained on."""
        metadata = read_metadata(path)
        choose(condition, trained_conditions(metadata, str(path)), str(path))
        model = build_saltr(config_from_metadata(metadata, str(path)))
        load_into(model, read_tensors(path), path)
        backbone_for_inference(model.eval().backbone)
        if device is not None:
            model.to(device)
        postprocess = json.loads(metadata.get("postprocess", "{}"))
        density = cls(
            model,
            sigma_px=postprocess.get("sigma_px"),
            floor_weight=postprocess.get("floor_weight", DEFAULT_FLOOR_WEIGHT),
            flip_average=postprocess.get("flip_average", False),
        )
        density.name = metadata.get("model", cls.name)
        density.metadata = metadata
        return density

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (H, W, 3) -> normalized points (N, 2) as (x, y) and fixation probabilities (N,)."""
        outputs = self.model(self._input(image))  # pred_points (1, N, 2), pred_logits (1, N)
        return outputs["pred_points"][0].float(), outputs["pred_logits"][0].float().sigmoid()

    def _input(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) -> the model's input (1, 3, h, w) in [0, 1], resized to its size."""
        height, width = self.model.config.image_size
        resized = np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))
        return torch.from_numpy(resized).to(self._device()).permute(2, 0, 1)[None].float() / 255.0

    def sigma_at(self, size: tuple[int, int]) -> float:
        """The Gaussian's sigma in pixels of an image of ``size`` = (height, width)."""
        return scaled_sigma(size, self.sigma_px, self.model.config.image_size)

    @torch.inference_mode()
    def mixture(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The density's parts, uint8 (H, W, 3) in: normalized points (N, 2), their weights (N,)
        and, with the density head, each Gaussian's sigma (N,) in pixels of the input size
        times ``sigma_px / config.sigma_px`` (calibration's scale); without it the weights are
        the fixation probabilities and the sigma is one, :meth:`sigma_at`'s. With
        :attr:`flip_average`, 2N of each: the mirror image's half with its points mirrored back
        and every weight halved."""
        x = self._input(image)  # (1, 3, h, w)
        if self.flip_average:
            x = torch.cat([x, x.flip(-1)])  # (2, 3, h, w)
        outputs = self.model(x)
        points = outputs["pred_points"].float()  # (V, N, 2), V views
        if self.flip_average:
            points[1, :, 0] = 1.0 - points[1, :, 0]  # x of the mirror image's points, mirrored
        if not self.model.config.density_head:
            weights, sigmas = outputs["pred_logits"].float().sigmoid(), None  # (V, N)
        else:
            weights = outputs["pred_weights"].float().softmax(-1)  # (V, N)
            scale = self.sigma_px / self.model.config.sigma_px
            sigmas = (outputs["pred_sigmas"].float() * scale).flatten()  # (V * N,)
        return points.flatten(0, 1), weights.flatten() / len(x), sigmas

    def points(self, image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted fixations in pixels of ``size``: (N, 2) (x, y) and (N,) probabilities,
        most probable first."""
        points, probs = self.predict(image)
        ((pixels, p),) = fixation_points(points[None], probs[None], size)
        return pixels.cpu().numpy(), p.cpu().numpy()

    def scanpath(
        self, image: np.ndarray, size: tuple[int, int] | None = None, threshold: float = 0.5
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The predicted scanpath: x (L,), y (L,) in pixels of ``size`` (default: the image's)
        and each fixation's probability (L,), in viewing order.

        Queries are read in order until the first whose probability is below ``threshold`` (at
        least one fixation; see :func:`scanpath_from_outputs`). Needs a model trained with
        ``matching="sequential"``: the queries of a Hungarian-trained model have no order.
        """
        if self.model.config.matching != "sequential":
            raise ValueError(
                "scanpaths need a SalTR trained with matching='sequential' (e.g. "
                "saltr-lite0-scanpath); this one's queries are an unordered set"
            )
        points, probs = self.predict(image)
        ((pixels, p),) = scanpath_from_outputs(
            points[None], probs[None], image.shape[:2] if size is None else size, threshold
        )
        pixels = pixels.cpu().double().numpy()  # (L, 2)
        return pixels[:, 0], pixels[:, 1], p.cpu().double().numpy()

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if image is None:
            raise ValueError("SalTR needs the image")
        points, weights, sigmas = self.mixture(image)
        # at the image's size: the input's pixels scaled by the diagonal, as sigma_at's
        scale = scaled_sigma(size, 1.0, self.model.config.image_size)
        with torch.inference_mode():
            result = log_density(
                points[None].double(),
                weights[None].double(),
                size,
                sigma=self.sigma_at(size) if sigmas is None else sigmas[None].double() * scale,
                floor_weight=self.floor_weight,
                normalize_each=sigmas is not None,
            )  # (1, H, W)
        return result[0].cpu().numpy()
