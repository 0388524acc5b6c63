"""The runner every grid model shares: image -> network input -> log-density over cells -> the
image's own pixels.

A grid model (dense readouts, SUM) predicts a log-density over output cells, a coarse grid over
its input. :class:`GridDensity` resizes each image to the network's input (aspect kept, about
``input_pixels`` pixels, sides multiples of 32, see :func:`input_size_for`), runs images that
share an input size as one batch, optionally mixes in the prediction for the mirrored image, and
turns the cells' log-density into one over the image's pixels by bilinear upsampling and
renormalization. A family subclasses it and says how to run its network (:meth:`cells`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from salience.data.conditions import Condition, choose, trained_conditions
from salience.models.base import ImageDensityModel
from salience.models.input_size import input_size_for
from salience.models.metadata import CheckpointFormat

__all__ = ["GridDensity", "input_size_for"]


class GridDensity(ImageDensityModel):
    """Runs a network that predicts a log-density over cells; log-densities at each image's own
    size. ``metadata`` is the checkpoint's (its ``model`` names the variant, its
    ``conditions`` the kinds of data it was trained on); ``condition`` is the kind predicted
    for, one of those. The network's ``config`` says how it runs: ``input_pixels`` (about
    this many input pixels) and, if it has one, ``flip_average`` (mix in the mirrored image's
    prediction, twice the work; only for a :attr:`Condition.mirror_symmetric` condition)."""

    name = "grid"
    format: CheckpointFormat  # the family's weight files

    def __init__(
        self,
        model: nn.Module,
        metadata: dict[str, str] | None = None,
        condition: Condition | int | str | None = None,
    ) -> None:
        self.model = model.eval()
        self.input_pixels: int = model.config.input_pixels
        self.metadata = dict(metadata or {})
        self.name = self.metadata.get("model", self.name)
        self.trained = trained_conditions(self.metadata, self.name)
        self.condition = choose(condition, self.trained, self.name)
        self.flip_average: bool = (
            getattr(model.config, "flip_average", False) and self.condition.mirror_symmetric
        )

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, condition: Condition | int | str | None = None, device: Any = None
    ) -> GridDensity:
        """Rebuild the model a checkpoint describes, ready for inference, predicting for
        ``condition`` (one it was trained on; default eye tracking on natural images)."""
        model, own = cls.format.load(path)
        metadata = cls.conditions_beside(own, path)
        chosen = choose(condition, trained_conditions(metadata, str(path)), str(path))
        if chosen not in trained_conditions(own, str(path)):
            cls.load_condition(model, path, chosen)
        cls.for_inference(model.eval())
        if device is not None:
            model.to(device)
        return cls(model, metadata, chosen)

    @classmethod
    def conditions_beside(cls, metadata: dict[str, str], path: str | Path) -> dict[str, str]:
        """A checkpoint's metadata with the conditions that files beside it add (a family with
        such files says how, see :mod:`salience.models.dense.conditions`); none here."""
        return metadata

    @classmethod
    def load_condition(cls, model: nn.Module, path: str | Path, condition: Condition) -> None:
        """Load into ``model`` what the file beside ``path`` holds for ``condition``."""
        raise NotImplementedError(f"{cls.__name__} keeps no conditions beside its checkpoints")

    @staticmethod
    def for_inference(model: nn.Module) -> None:
        """A family's changes to an eval-mode network that serve inference only (none here)."""

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """The network's log-density over output cells (B, h', w') for a batch (B, 3, h, w) of
        RGB in [0, 1]."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The network's input (height, width) for an image of ``size``."""
        return input_size_for(size, self.input_pixels)

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
        cells = self.cells_per_image(images, self.flip_averaged_cells)  # [(h', w')]
        return [self.upsample(c, im.shape[:2]) for c, im in zip(cells, images, strict=True)]

    def cells_per_image(
        self, images: Sequence[np.ndarray], cells_of: Callable[[torch.Tensor], torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per uint8 (H_i, W_i, 3) image its slice of ``cells_of(batch)``, run on one batch per
        network input size."""
        results: list[torch.Tensor] = [torch.empty(0)] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(self.input_size(image.shape[:2]), []).append(i)
        for input_size, members in groups.items():
            x = self._batch([images[i] for i in members], input_size)  # (B, 3, h, w)
            for i, cells in zip(members, cells_of(x), strict=True):
                results[i] = cells
        return results

    def flip_averaged_cells(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`cells` of a batch, with the mirror averaging :attr:`flip_average` asks for."""
        return self.flip_averaged(self.cells, x)

    def flip_averaged(
        self, cells_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``cells_of(x)``, log-densities (B, ..., h', w'), mixed with those of the mirrored
        images (mirrored back) when :attr:`flip_average` is set."""
        if not self.flip_average:
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
