"""A trained :class:`DenseSaliency` as a :class:`DensityModel`, and its weight files.

The image is resized to the network's input (aspect kept, see :func:`input_size_for`), the
log-density over the output cells is turned into a density over the image's own pixels by
bilinear upsampling and renormalization. Weights are safetensors whose metadata carries the
model's name and :class:`DenseConfig` (and, for shipped models, the scanpath sampler's
parameters), so the file alone rebuilds the model; fp16 files are loaded as float32.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from salience.models.base import DensityModel
from salience.models.dense.model import DenseConfig, DenseSaliency, input_size_for
from salience.models.metadata import config_fields, read_metadata


def checkpoint_metadata(model: DenseSaliency, name: str) -> dict[str, str]:
    """safetensors metadata describing a dense checkpoint (strings only)."""
    return {"model": name, "dense_config": json.dumps(dataclasses.asdict(model.config))}


def config_from_metadata(metadata: dict[str, str], where: str) -> DenseConfig:
    """The :class:`DenseConfig` stored by :func:`checkpoint_metadata`."""
    fields = config_fields(metadata, "dense_config", where, "a dense-model")
    fields["backbone_pretrained"] = False  # the checkpoint holds every weight
    return DenseConfig(**fields)


class DenseDensity(DensityModel):
    """Runs a :class:`DenseSaliency` on images; log-densities at each image's own size."""

    name = "dense"

    def __init__(self, model: DenseSaliency, metadata: dict[str, str] | None = None) -> None:
        self.model = model.eval()
        self.metadata = dict(metadata or {})
        self.name = self.metadata.get("model", self.name)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, backbone: str | None = None, device: torch.device | str | None = None
    ) -> DenseDensity:
        """Rebuild the model a checkpoint describes; ``backbone``, if given, must be its."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        metadata = read_metadata(path)
        config = config_from_metadata(metadata, str(path))
        if backbone is not None and config.backbone != backbone:
            raise ValueError(
                f"{path}: a checkpoint with backbone {config.backbone!r}, not {backbone!r}"
            )
        model = DenseSaliency(config)
        tensors = {k: v.float() for k, v in load_file(str(path)).items()}
        model.load_state_dict(tensors, strict=True)
        model.eval().backbone.fold_batch_norm()  # inference only, see Backbone.fold_batch_norm
        model.to(memory_format=torch.channels_last)
        if device is not None:
            model.to(device)
        return cls(model, metadata)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The network's input (height, width) for an image of ``size``."""
        return input_size_for(size, self.model.config.input_pixels)

    def _batch(self, images: Sequence[np.ndarray], input_size: tuple[int, int]) -> torch.Tensor:
        height, width = input_size
        arrays = [
            np.asarray(Image.fromarray(im).resize((width, height), Image.BILINEAR)) for im in images
        ]
        x = torch.from_numpy(np.stack(arrays)).to(self.device)  # (B, h, w, 3) uint8
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, h, w)
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def log_densities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 (H_i, W_i, 3) images -> float64 log-densities (H_i, W_i), each summing to 1.

        Images sharing a network input size run as one batch."""
        cells = self.cells_per_image(images, self.cells)  # [(h', w')]
        return [self.upsample(c, im.shape[:2]) for c, im in zip(cells, images, strict=True)]

    def cells_per_image(
        self, images: Sequence[np.ndarray], cells_of: Callable[[torch.Tensor], torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per uint8 (H_i, W_i, 3) image its slice of ``cells_of(batch)`` (e.g. :meth:`cells`),
        run on one batch per network input size."""
        results: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(self.input_size(image.shape[:2]), []).append(i)
        for input_size, members in groups.items():
            x = self._batch([images[i] for i in members], input_size)  # (B, 3, h, w)
            for i, cells in zip(members, cells_of(x), strict=True):
                results[i] = cells
        return results  # type: ignore[return-value]

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """The network's log-density over output cells (B, h', w') for a batch (B, 3, h, w)."""
        return self.flip_averaged(lambda batch: self.model(batch)["log_density"], x)

    def flip_averaged(
        self, cells_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``cells_of(x)``, log-densities (B, ..., h', w'), mixed with those of the mirrored
        images (mirrored back) when the config's ``flip_average`` asks for it."""
        if not self.model.config.flip_average:
            return cells_of(x)
        both = cells_of(torch.cat([x, x.flip(-1)]))  # (2B, ..., h', w')
        plain, mirrored = both.split(len(x))
        return torch.logaddexp(plain, mirrored.flip(-1)) - math.log(2)  # (B, ..., h', w')

    @staticmethod
    def upsample(log_cells: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """Log-density over cells (h, w) -> log-density over the pixels of ``size``."""
        density = log_cells.double().exp()[None, None]  # (1, 1, h, w)
        density = F.interpolate(density, size=tuple(size), mode="bilinear", align_corners=False)
        density = density[0, 0].clamp_min(torch.finfo(torch.float64).tiny)  # (H, W)
        return (density / density.sum()).log().cpu().numpy()

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if image is None:
            raise ValueError("the dense model needs the image")
        if tuple(image.shape[:2]) != tuple(size):
            image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
        return self.log_densities([image])[0]
