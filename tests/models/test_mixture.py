"""Mixtures of shipped models: the density is the weighted sum of the components' densities."""

from __future__ import annotations

import numpy as np
import pytest

from salience.models.base import DensityModel
from salience.models.mixture import MIXTURES, MixtureDensity, load_mixture
from salience.models.registry import describe_models, family_of, load_pretrained


class Fixed(DensityModel):
    """A density model that returns one fixed log-density, whatever the image."""

    def __init__(self, density: np.ndarray, needs_image: bool = True) -> None:
        with np.errstate(divide="ignore"):  # a zero is a log-density of -inf
            self.logp = np.log(density / density.sum())
        self.needs_image = needs_image

    def log_density(self, image, size):
        assert tuple(size) == self.logp.shape
        return self.logp


def test_density_is_the_weighted_sum_of_the_components() -> None:
    rng = np.random.default_rng(0)
    a, b = Fixed(rng.random((6, 8))), Fixed(rng.random((6, 8)), needs_image=False)
    mixture = MixtureDensity([a, b], [0.7, 0.3], "m")
    density = np.exp(mixture.log_density(np.zeros((6, 8, 3), np.uint8), (6, 8)))
    np.testing.assert_allclose(density, 0.7 * np.exp(a.logp) + 0.3 * np.exp(b.logp), rtol=1e-12)
    assert density.sum() == pytest.approx(1.0, abs=1e-12)
    assert mixture.needs_image and mixture.name == "m"


def test_zero_probabilities_stay_finite_where_a_component_has_mass() -> None:
    zero = np.ones((4, 4))
    zero[0, 0] = 0.0
    mixture = MixtureDensity([Fixed(zero), Fixed(np.ones((4, 4)))], [0.5, 0.5])
    logp = mixture.log_density(None, (4, 4))
    assert np.isfinite(logp).all()
    assert np.exp(logp[0, 0]) == pytest.approx(0.5 / 16)


@pytest.mark.parametrize(
    ("weights", "message"),
    [([0.5], "one weight per component"), ([0.8, 0.3], "sum to 1"), ([1.2, -0.2], "positive")],
)
def test_bad_weights_are_refused(weights: list[float], message: str) -> None:
    parts = [Fixed(np.ones((2, 2))), Fixed(np.ones((2, 2)))]
    with pytest.raises(ValueError, match=message):
        MixtureDensity(parts, weights)


def test_unknown_mixture_names_the_shipped_ones() -> None:
    with pytest.raises(KeyError, match="ensemble"):
        load_mixture("no-such-mixture")


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_shipped_mixtures_are_registered_and_weighted(name: str) -> None:
    assert family_of(name).name == "mixtures"
    assert describe_models()[name]
    weights = [w for _, w in MIXTURES[name]]
    assert min(weights) > 0 and sum(weights) == pytest.approx(1.0)
    for component, _ in MIXTURES[name]:  # shipped models with weights of their own
        assert family_of(component).config_key is not None


def test_ensemble_predicts_the_mixture_of_its_shipped_components() -> None:
    ensemble = load_pretrained("ensemble")
    image = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    expected = sum(
        weight * np.exp(load_pretrained(model).log_density(image, (96, 128)))
        for model, weight in MIXTURES["ensemble"]
    )
    density = np.exp(ensemble.log_density(image, (96, 128)))
    np.testing.assert_allclose(density, expected, rtol=1e-9, atol=1e-15)
    assert "sampler" in ensemble.metadata  # the Predictor's scanpaths need one


def test_ensemble_refuses_the_onnxruntime_backend_clearly() -> None:
    pytest.importorskip("onnxruntime")
    from salience.models.onnx import load_onnx

    with pytest.raises(ValueError, match="use the torch backend"):
        load_onnx("ensemble")
