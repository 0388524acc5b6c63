"""Scanpaths from SalTR's scanpath variant: ordered fixations predicted, durations sampled.

A SalTR trained with ``matching="sequential"`` on one observer's scanpath in viewing order
(``saltr-lite0-scanpath``, target kind ``scanpath``) decodes fixations in order: query i is the
i-th fixation and its probability is that of a scanpath being at least i + 1 fixations long.
:class:`SaltrScanpathModel` turns that into a scanpath the metrics of
:mod:`salience.evaluation.scanpath_metrics` take, an (L, 3) array of x, y and duration:

- predicted by the network: the positions, their order and the length L (queries read until
  the first whose probability is below the threshold, see ``postprocess.scanpath_from_outputs``);
- sampled, not predicted: the durations, log-normal with the parameters of a
  :class:`~salience.models.sampler.ScanpathSampler` (by default the one fitted on OSIE train; the
  first fixation has its own, shorter, distribution). SalTR has no notion of time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from salience.models.saltr.density import SaltrDensity
from salience.models.sampler import ScanpathSampler


class SaltrScanpathModel:
    """A sequentially trained SalTR as a scanpath model: image in, (L, 3) x, y, duration out.

    ``density``: the trained model (its config must say ``matching="sequential"``);
    ``sampler``: where the durations' log-normal parameters come from (default: OSIE train's);
    ``threshold``: the fixation probability below which the scanpath ends.
    """

    def __init__(
        self,
        density: SaltrDensity,
        sampler: ScanpathSampler | None = None,
        threshold: float = 0.5,
    ) -> None:
        if density.model.config.matching != "sequential":
            raise ValueError(
                "SaltrScanpathModel needs a SalTR trained with matching='sequential' (e.g. "
                "saltr-lite0-scanpath); this one's queries are an unordered set"
            )
        self.density = density
        self.sampler = sampler or ScanpathSampler()
        self.threshold = threshold

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: torch.device | str | None = None, **kwargs
    ) -> SaltrScanpathModel:
        """The model of a checkpoint written by ``salience train``; ``kwargs`` as ``__init__``."""
        return cls(SaltrDensity.from_checkpoint(path, device=device), **kwargs)

    def predict(
        self,
        image: np.ndarray,
        rng: np.random.Generator | int | None = None,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """uint8 (H, W, 3) -> (L, 3) float64: x, y in pixels of ``size`` (default: the
        image's), in predicted viewing order, and a sampled duration in seconds.

        ``rng`` (a Generator or a seed) draws the durations only; positions are deterministic.
        """
        xs, ys, _ = self.density.scanpath(image, size=size, threshold=self.threshold)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        durations = np.empty(len(xs))  # (L,) seconds
        durations[0] = rng.lognormal(*self.sampler.first_duration)
        durations[1:] = rng.lognormal(*self.sampler.duration, size=len(xs) - 1)
        return np.stack([xs, ys, durations], axis=1)
