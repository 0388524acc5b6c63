"""Mixtures of shipped models of different families: one density, fixed weights.

Models of different kinds err in different places: a dense readout of CNN features spreads its
mass over everything that looks salient, SalTR's density is a short list of predicted fixations.
The mixture of their densities explains more than either (BENCHMARKS.md, "Mixing model
families"), as DeepGaze IIE's mixture of different backbones does. A mixture is defined here, in
code, by the names of shipped models and their weights (chosen by cross-validation); it has no
weights file of its own and runs on the torch backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from salience.models.base import DensityModel
from salience.models.registry import load_pretrained, register_model

#: The shipped mixtures: name -> ((shipped model, weight), ...), weights summing to 1.
MIXTURES: dict[str, tuple[tuple[str, float], ...]] = {
    # the weight of saltr: cross-validated on the five-readout default's recipe mixed with
    # saltr's, folds 0 and 1 (BENCHMARKS.md)
    "ensemble": (("accurate", 0.65), ("saltr", 0.35)),
}


class MixtureDensity(DensityModel):
    """The density ``sum_i w_i p_i`` of component density models ``p_i`` with weights ``w_i``.

    ``metadata`` is the first component's scanpath sampler (the Predictor's scanpaths need
    one), under the mixture's name.
    """

    def __init__(
        self, components: Sequence[DensityModel], weights: Sequence[float], name: str = "mixture"
    ) -> None:
        if len(components) != len(weights) or not components:
            raise ValueError(
                f"a mixture needs one weight per component, got {len(components)} components "
                f"and {len(weights)} weights"
            )
        if min(weights) <= 0 or abs(sum(weights) - 1.0) > 1e-9:
            raise ValueError(f"mixture weights must be positive and sum to 1, got {list(weights)}")
        self.components = list(components)
        self.log_weights = np.log(np.asarray(weights, dtype=np.float64))  # (K,)
        self.name = name
        self.needs_image = any(c.needs_image for c in self.components)
        first = getattr(self.components[0], "metadata", {})
        self.metadata: dict[str, str] = {"model": name}
        if "sampler" in first:
            self.metadata["sampler"] = first["sampler"]

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        parts = np.stack([c.log_density(image, size) for c in self.components])  # (K, H, W)
        return logsumexp(parts + self.log_weights[:, None, None], axis=0)  # (H, W)


def load_mixture(
    name: str, condition: str | int | None = None, device: Any = None
) -> MixtureDensity:
    """The shipped mixture ``name`` (a key of :data:`MIXTURES`), its components loaded with
    their shipped weights for ``condition`` on ``device``."""
    if name not in MIXTURES:
        raise KeyError(f"unknown mixture {name!r}; shipped mixtures: {', '.join(MIXTURES)}")
    models, weights = zip(*MIXTURES[name], strict=True)
    components = [load_pretrained(m, condition, device) for m in models]
    return MixtureDensity(components, weights, name)


@register_model("ensemble")
def ensemble(
    pretrained: bool = False, condition: str | int | None = None, device: Any = None
) -> MixtureDensity:
    """The shipped ensemble: the densities of ``accurate`` and ``saltr`` mixed 0.65 / 0.35 (see
    salience/weights/ensemble.md); always the shipped weights, slowest and most accurate."""
    return load_mixture("ensemble", condition, device)
