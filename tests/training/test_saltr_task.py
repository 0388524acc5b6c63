"""SalTR's training task: weighted set loss, empty targets, cached features, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salience.data import load_dataset
from salience.models.saltr import SetCriterion, log_density
from salience.training.config import ModelConfig
from salience.training.data import FixationDataset
from salience.training.features import FeatureBank
from salience.training.saltr import (
    SIGMA_FACTORS,
    SaltrTask,
    fixation_log_likelihoods,
    weighted_set_loss,
)
from tests.training.conftest import TINY_MODEL


@pytest.fixture
def task_and_model():
    torch.manual_seed(0)
    task = SaltrTask(ModelConfig("saltr-lite0", dict(TINY_MODEL)), (64, 96))
    return task, task.build_model().eval()


def test_unit_weights_equal_set_criterion(task_and_model):
    task, model = task_and_model
    outputs = model(torch.rand(3, 3, 64, 96))
    points = [torch.rand(4, 2), torch.rand(15, 2), torch.rand(0, 2)]  # more targets than queries
    weights = [torch.ones(len(p)) for p in points]
    ours = weighted_set_loss(task.criterion, outputs, points, weights)
    reference = SetCriterion.from_config(model.config)(outputs, points)
    assert ours.keys() == reference.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], reference[key])


def test_empty_targets_train(task_and_model):
    task, model = task_and_model
    model.train()
    outputs = model(torch.rand(2, 3, 64, 96))
    batch = {"points": [torch.zeros(0, 2)] * 2, "weights": [torch.zeros(0)] * 2}
    losses = task.loss(outputs, batch)
    assert torch.isfinite(losses["loss"]) and losses["loss_point"] == 0
    losses["loss"].backward()  # all queries are pushed towards "no fixation"


def test_weights_are_soft_class_targets(task_and_model):
    task, model = task_and_model
    outputs = model(torch.rand(1, 3, 64, 96))
    points = [torch.rand(3, 2)]
    full = weighted_set_loss(task.criterion, outputs, points, [torch.ones(3)])
    half = weighted_set_loss(task.criterion, outputs, points, [torch.full((3,), 0.5)])
    torch.testing.assert_close(half["loss_point"], 0.5 * full["loss_point"])
    assert not torch.allclose(half["loss_class"], full["loss_class"])


def test_forward_from_cached_features_equals_forward(task_and_model, small_osie, tmp_path):
    task, model = task_and_model
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        direct = model(images)
        cached = task.forward_features(model, task.encode(model, images), {})
    torch.testing.assert_close(cached["pred_points"], direct["pred_points"])
    torch.testing.assert_close(cached["pred_logits"], direct["pred_logits"])
    assert type(model.backbone).__name__ == "Backbone"  # the real backbone is back

    data = load_dataset("osie", small_osie).split("train")
    dataset = FixationDataset([data.subset(data.ids[:3])], (64, 96), task.make_targets)
    bank = FeatureBank.build(task, model, dataset, torch.device("cpu"), 4, cache_dir=tmp_path)
    (level,) = bank.lookup([2, 0], [True, False], torch.device("cpu"))
    expected = task.encode(
        model, torch.stack([dataset.plain_image(2, True), dataset.plain_image(0)])
    )[0]
    torch.testing.assert_close(level, expected)
    (folder,) = tmp_path.glob("features-*")
    assert len(list(folder.glob("*.pt"))) == 3  # one file per image
    again = FeatureBank.build(task, model, dataset, torch.device("cpu"), 4, cache_dir=tmp_path)
    torch.testing.assert_close(again.levels[0], bank.levels[0])
    # a subset in another order reads the same images' files: nothing is computed
    part = FixationDataset([data.subset(data.ids[2::-2])], (64, 96), task.make_targets)
    encode, batches = task.encode, []
    task.encode = lambda model, images: batches.append(len(images)) or encode(model, images)
    try:
        subset = FeatureBank.build(task, model, part, torch.device("cpu"), 4, cache_dir=tmp_path)
    finally:
        del task.encode
    assert batches == [1]  # only the probe of the cache key's feature shapes
    torch.testing.assert_close(subset.levels[0], bank.levels[0][[2, 0]])


def test_calibration_likelihood_matches_the_density():
    rng = np.random.default_rng(0)
    size = (30, 40)
    points, probs = torch.rand(6, 2, dtype=torch.float64), torch.rand(6, dtype=torch.float64)
    xs, ys = rng.uniform(0, 40, 25), rng.uniform(0, 30, 25)
    grid = fixation_log_likelihoods(points, probs, xs, ys, size, [2.0, 5.0], [0.01, 0.2])
    for i, sigma in enumerate([2.0, 5.0]):
        for j, floor in enumerate([0.01, 0.2]):
            dense = log_density(points[None], probs[None], size, sigma=sigma, floor_weight=floor)[0]
            expected = dense[ys.astype(int), xs.astype(int)].sum().item()
            assert grid[i, j] == pytest.approx(expected, rel=1e-9)


def test_calibration_likelihood_matches_the_density_with_a_width_per_point():
    rng = np.random.default_rng(1)
    size = (30, 40)
    points = torch.rand(6, 2, dtype=torch.float64)
    weights = torch.rand(6, dtype=torch.float64).softmax(0)
    sigmas = torch.rand(6, dtype=torch.float64) * 4 + 1
    xs, ys = rng.uniform(0, 40, 25), rng.uniform(0, 30, 25)
    grid = fixation_log_likelihoods(
        points, weights, xs, ys, size, [sigmas, 2 * sigmas], [0.01, 0.2], normalize_each=True
    )
    for i, factor in enumerate([1, 2]):
        for j, floor in enumerate([0.01, 0.2]):
            dense = log_density(
                points[None],
                weights[None],
                size,
                sigma=factor * sigmas[None],
                floor_weight=floor,
                normalize_each=True,
            )[0]
            expected = dense[ys.astype(int), xs.astype(int)].sum().item()
            assert grid[i, j] == pytest.approx(expected, rel=1e-9)


@pytest.fixture
def density_head(small_osie):
    """A tiny SalTR task with the density head, and the small OSIE training images."""
    torch.manual_seed(0)
    task = SaltrTask(
        ModelConfig("saltr-lite0-deformable", {**TINY_MODEL, "density_head": True}), (64, 96)
    )
    return task, load_dataset("osie", small_osie).split("train")


def test_density_head_is_trained_by_the_fixations_likelihood(density_head):
    task, data = density_head
    model = task.build_model().train()
    dataset = FixationDataset([data.subset(data.ids[:2])], (64, 96), task.make_targets)
    samples = [dataset[0], dataset[1]]
    assert len(samples[0]["fixations"]) > len(samples[0]["points"])  # every fixation, not a set
    batch = {key: [s[key] for s in samples] for key in ("points", "weights", "fixations")}
    outputs = model(torch.stack([s["image"] for s in samples]))
    losses = task.loss(outputs, batch)
    set_only = weighted_set_loss(task.criterion, outputs, batch["points"], batch["weights"])
    torch.testing.assert_close(losses["loss"], set_only["loss"] + losses["loss_density"])
    losses["loss"].backward()
    assert model.sigma_head.weight.grad.abs().sum() > 0
    assert model.weight_head.weight.grad.abs().sum() > 0


def test_calibrated_density_head_is_a_density_at_any_size(density_head):
    task, data = density_head
    model = task.build_model().eval()
    chosen = task.calibrate(model, data.subset(data.ids[:2]))
    assert chosen["sigma_px"] in [model.config.sigma_px * f for f in SIGMA_FACTORS]
    density = task.density(model)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    log_p = density.log_density(image, (50, 70))
    assert log_p.shape == (50, 70) and np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-9)
    # each query's Gaussian is as wide as its head says, scaled by calibration and the size
    _, weights, sigmas = density.mixture(image)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    scale = chosen["sigma_px"] / model.config.sigma_px
    torch.testing.assert_close(sigmas, model(density._input(image))["pred_sigmas"][0] * scale)
