"""A trained SalTR as a :class:`DensityModel`: image in, log-density over its pixels out.

The image is resized to the model's input size (the backbone owns the ImageNet normalization),
the predicted fixations become probability-weighted Gaussians at the image's own size (sigma
scaled with the image diagonal) mixed with a small center-bias floor, as in ``postprocess.py``.

Trained weights are a safetensors file whose metadata carries everything needed to rebuild the
model: the registered variant name, the full :class:`SaltrConfig` and the post-processing
parameters (see :func:`checkpoint_metadata`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from salience.models.base import DensityModel
from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.model import SalTR, build_saltr
from salience.models.saltr.postprocess import fixation_points, log_density, scaled_sigma

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
        "model": name,
        "saltr_config": json.dumps(dataclasses.asdict(model.config)),
        "postprocess": json.dumps(postprocess),
    }


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file ({} if it has none)."""
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


class SaltrDensity(DensityModel):
    """Runs a SalTR on an image and returns the post-processed log-density at the image's size.

    ``sigma_px`` is the Gaussian's sigma at the model's input size (default: the config's);
    ``floor_weight`` is the share of the broad center-bias prior that keeps the density finite.
    """

    name = "saltr"

    def __init__(
        self,
        model: SalTR,
        sigma_px: float | None = None,
        floor_weight: float = DEFAULT_FLOOR_WEIGHT,
    ) -> None:
        self.model = model.eval()
        self.sigma_px = model.config.sigma_px if sigma_px is None else sigma_px
        self.floor_weight = floor_weight

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        backbone: str | None = None,
        device: torch.device | str | None = None,
    ) -> SaltrDensity:
        """Rebuild the model a checkpoint describes and load its weights.

        The architecture (attention type, sizes) is the checkpoint's; ``backbone``, if given,
        must be the checkpoint's, so a ResNet-50 variant never loads Lite0 weights. The
        backbone's ImageNet weights are not fetched: the checkpoint holds all weights.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        metadata = read_metadata(path)
        if "saltr_config" not in metadata:
            raise ValueError(f"{path}: not a SalTR checkpoint (no saltr_config in its metadata)")
        fields = json.loads(metadata["saltr_config"])
        if backbone is not None and fields["backbone"] != backbone:
            raise ValueError(
                f"{path}: a {metadata.get('model')} checkpoint with backbone "
                f"{fields['backbone']!r}, not {backbone!r}"
            )
        fields["image_size"] = tuple(fields["image_size"])
        fields["backbone_pretrained"] = False
        model = build_saltr(SaltrConfig(**fields))
        model.load_state_dict(load_file(str(path)), strict=True)
        if device is not None:
            model.to(device)
        postprocess = json.loads(metadata.get("postprocess", "{}"))
        density = cls(
            model,
            sigma_px=postprocess.get("sigma_px"),
            floor_weight=postprocess.get("floor_weight", DEFAULT_FLOOR_WEIGHT),
        )
        density.name = metadata.get("model", cls.name)
        return density

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (H, W, 3) -> normalized points (N, 2) as (x, y) and fixation probabilities (N,)."""
        height, width = self.model.config.image_size
        resized = np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))
        x = torch.from_numpy(resized).to(self._device()).permute(2, 0, 1)[None].float() / 255.0
        outputs = self.model(x)  # pred_points (1, N, 2), pred_logits (1, N)
        return outputs["pred_points"][0].float(), outputs["pred_logits"][0].float().sigmoid()

    def sigma_at(self, size: tuple[int, int]) -> float:
        """The Gaussian's sigma in pixels of an image of ``size`` = (height, width)."""
        return scaled_sigma(size, self.sigma_px, self.model.config.image_size)

    def points(self, image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted fixations in pixels of ``size``: (N, 2) (x, y) and (N,) probabilities,
        most probable first."""
        points, probs = self.predict(image)
        ((pixels, p),) = fixation_points(points[None], probs[None], size)
        return pixels.cpu().numpy(), p.cpu().numpy()

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if image is None:
            raise ValueError("SalTR needs the image")
        points, probs = self.predict(image)
        with torch.inference_mode():
            result = log_density(
                points[None].double(),
                probs[None].double(),
                size,
                sigma=self.sigma_at(size),
                floor_weight=self.floor_weight,
            )  # (1, H, W)
        return result[0].cpu().numpy()
