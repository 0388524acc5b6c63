"""What every model offers the evaluation: a log-density over an image's pixels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image

from salience.data.dataset import Dataset, Stimulus


class DensityModel(ABC):
    """A saliency model that predicts a probability density over pixels (natural log).

    ``needs_image`` is False for models that ignore the content (baselines), so evaluation can
    skip decoding images. ``needs_fit`` models learn from a training split before evaluation.
    """

    name: str = "model"
    needs_image: bool = True
    needs_fit: bool = False

    def fit(self, train: Dataset, val: Dataset | None = None) -> None:  # noqa: B027
        """Learn from data; the default model has nothing to learn."""

    @abstractmethod
    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        """Log-density over the ``size`` = (height, width) pixel grid; ``exp`` sums to 1."""


class ImageDensityModel(DensityModel):
    """A model of what an image shows that predicts many images at once (the neural models,
    whichever runtime runs them); one image's density is a batch of one."""

    @abstractmethod
    def log_densities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 (H_i, W_i, 3) images -> float64 log-densities (H_i, W_i), each summing to 1."""

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if image is None:
            raise ValueError(f"{self.name} needs the image")
        if tuple(image.shape[:2]) != tuple(size):
            image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
        return self.log_densities([image])[0]


class ObserverConditionalModel(DensityModel):
    """A model whose prediction for one observer may use the other observers' fixations.

    The gold standard is such a model: it is evaluated per observer, on the leave-one-out density.
    """

    needs_image = False

    @abstractmethod
    def log_density_without(self, stimulus: Stimulus, observer: int) -> np.ndarray:
        """Log-density for ``stimulus`` built without scanpath number ``observer``."""

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        raise TypeError(
            f"{self.name} needs the other observers' fixations: use log_density_without"
        )
