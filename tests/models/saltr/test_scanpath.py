"""Scanpaths from a sequentially trained SalTR checkpoint: order, durations, old checkpoints."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import salience
from salience.evaluation.scanpath_metrics import multimatch
from salience.models.saltr import (
    SaltrDensity,
    SaltrScanpathModel,
    build_saltr,
    scanpath_from_outputs,
)
from salience.models.saltr.density import checkpoint_metadata
from salience.models.sampler import ScanpathSampler
from tests.models.saltr import TINY as SMALL

TINY = {**SMALL, "image_size": (64, 96)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialized saltr-lite0-scanpath written as ``salience train`` writes it."""
    torch.manual_seed(0)
    model = salience.create_model("saltr-lite0-scanpath", **TINY)
    path = tmp_path_factory.mktemp("scanpath") / "best.safetensors"
    save_file(model.state_dict(), str(path), metadata=checkpoint_metadata(model, "x"))
    return path


def _image(height: int = 60, width: int = 80) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_scanpath_is_the_queries_in_order(checkpoint):
    density = salience.load_checkpoint(checkpoint)
    assert isinstance(density, SaltrDensity)
    image = _image()
    points, probs = density.predict(image)
    xs, ys, p = density.scanpath(image, threshold=0.0)  # nothing is below 0: every query
    assert len(xs) == 7
    np.testing.assert_allclose(xs, points[:, 0].numpy() * 80, rtol=1e-5)
    np.testing.assert_allclose(ys, points[:, 1].numpy() * 60, rtol=1e-5)
    np.testing.assert_allclose(p, probs.numpy(), rtol=1e-6)
    threshold = float(probs.median())
    xs, _, p = density.scanpath(image, size=(120, 160), threshold=threshold)
    ((expected, _),) = scanpath_from_outputs(points[None], probs[None], (120, 160), threshold)
    np.testing.assert_allclose(xs, expected[:, 0].numpy(), rtol=1e-6)
    assert (p[1:] >= threshold).all() and (len(xs) == 7 or probs[len(xs)] < threshold)


def test_durations_are_sampled_from_the_sampler(checkpoint):
    fixed = ScanpathSampler(first_duration=(math.log(0.1), 0.0), duration=(math.log(0.3), 0.0))
    model = SaltrScanpathModel.from_checkpoint(checkpoint, sampler=fixed, threshold=0.0)
    path = model.predict(_image(), rng=0)  # (L, 3)
    assert path.shape == (7, 3)
    np.testing.assert_allclose(path[:, 2], [0.1] + [0.3] * 6)
    assert (path[:, 0] < 80).all() and (path[:, 1] < 60).all()
    assert multimatch(path, path, (80, 60))["position"] == pytest.approx(1.0)

    default = SaltrScanpathModel(model.density, threshold=0.0)
    a, b, c = (default.predict(_image(), rng=seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :2], c[:, :2])  # positions are predicted, not drawn
    assert not np.array_equal(a[:, 2], c[:, 2]) and (a[:, 2] > 0).all()


def test_set_trained_models_have_no_scanpath():
    model = build_saltr(dataclasses.replace(salience.models.saltr.VARIANTS["saltr-lite0"], **TINY))
    density = SaltrDensity(model)
    with pytest.raises(ValueError, match="sequential"):
        density.scanpath(_image())
    with pytest.raises(ValueError, match="sequential"):
        SaltrScanpathModel(density)


@pytest.mark.parametrize(("no_matching", "matching"), [(True, "sequential"), (False, "hungarian")])
def test_checkpoints_from_before_matching_still_load(tmp_path, no_matching, matching):
    torch.manual_seed(0)
    model = salience.create_model("saltr-lite0-deformable", **TINY)
    metadata = checkpoint_metadata(model, "saltr-lite0-deformable")
    fields = json.loads(metadata["saltr_config"])
    del fields["matching"]
    fields["no_matching"] = no_matching  # what checkpoints of the ablation runs hold
    metadata["saltr_config"] = json.dumps(fields)
    save_file(model.state_dict(), str(tmp_path / "old.safetensors"), metadata=metadata)
    density = SaltrDensity.from_checkpoint(tmp_path / "old.safetensors")
    assert density.model.config == dataclasses.replace(model.config, matching=matching)
