"""SaltrDensity's test-time mirror averaging: the mixture of the image's and its mirror image's
densities, recorded in the weights file by ``salience export --flip-average``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from scipy.special import logsumexp

import salience
from salience.models.saltr import SaltrDensity
from salience.models.saltr.density import checkpoint_metadata
from salience.training.export import export_weights
from tests.models.saltr import TINY as SMALL

TINY = {**SMALL, "n_levels": 2, "image_size": (64, 96), "density_head": True}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialized SalTR with the density head, written as ``salience train`` does."""
    torch.manual_seed(0)
    model = salience.create_model("saltr-lite0-deformable", **TINY)
    path = tmp_path_factory.mktemp("saltr") / "last.safetensors"
    save_file(model.state_dict(), str(path), metadata=checkpoint_metadata(model, "x", 3.0))
    return path


def _image(height: int = 60, width: int = 90) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_mirror_averaged_density_is_the_mixture_of_both_views(checkpoint):
    density = salience.load_checkpoint(checkpoint)
    assert isinstance(density, SaltrDensity) and not density.flip_average
    image, size = _image(), (60, 90)
    plain = density.log_density(image, size)
    mirrored = density.log_density(np.ascontiguousarray(image[:, ::-1]), size)
    density.flip_average = True
    both = density.log_density(image, size)
    # the center-bias floor is symmetric, so the floors' mixture is the floor itself
    expected = logsumexp([plain, mirrored[:, ::-1]], axis=0) - np.log(2)
    np.testing.assert_allclose(both, expected, atol=1e-4)  # float32 network, batch of two
    assert np.abs(plain - expected).max() > 1e-2  # an untrained model is not symmetric
    np.testing.assert_allclose(
        density.log_density(np.ascontiguousarray(image[:, ::-1]), size), both[:, ::-1], atol=1e-4
    )


def test_mirror_averaging_leaves_points_and_mixture_size_as_they_are(checkpoint):
    density = salience.load_checkpoint(checkpoint)
    image = _image()
    points, probs = density.predict(image)
    one, weights, sigmas = density.mixture(image)
    density.flip_average = True
    two, halves, both_sigmas = density.mixture(image)
    assert one.shape == (7, 2) and two.shape == (14, 2) and both_sigmas.shape == (14,)
    torch.testing.assert_close(two[:7], one)
    torch.testing.assert_close(halves[:7], weights / 2)
    torch.testing.assert_close(both_sigmas[:7], sigmas)
    assert float(halves.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(density.predict(image)[0], points)  # the image's own points
    torch.testing.assert_close(density.predict(image)[1], probs)


def test_export_records_mirror_averaging_for_a_saltr(checkpoint, tmp_path):
    out = export_weights(checkpoint, tmp_path / "saltr.safetensors", flip_average=True)
    with safe_open(str(out), framework="pt") as f:
        postprocess = json.loads(f.metadata()["postprocess"])
    assert postprocess["flip_average"] and postprocess["sigma_px"] == 3.0
    assert salience.load_checkpoint(out).flip_average
    off = export_weights(out, tmp_path / "off.safetensors", flip_average=False)
    assert not salience.load_checkpoint(off).flip_average
