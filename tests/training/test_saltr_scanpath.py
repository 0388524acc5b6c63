"""SalTR's scanpath variant in training: ordered targets end to end, its config, and it learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from salience.data import load_dataset
from salience.models.saltr import SequentialMatcher
from salience.training.config import AugmentConfig, ModelConfig, load_config
from salience.training.data import FixationDataset
from salience.training.saltr import SaltrTask
from salience.training.targets import form_targets
from tests.training.conftest import TINY_MODEL

REPO = Path(__file__).resolve().parents[2]


def _scanpaths(lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled points of observers with these scanpath lengths: point k of observer o is
    (o / 10, k / 100), so every point tells whose and which it is."""
    points = np.concatenate([[(o / 10, k / 100) for k in range(n)] for o, n in enumerate(lengths)])
    observers = np.concatenate([np.full(n, o) for o, n in enumerate(lengths)])
    return points, observers


def test_scanpath_targets_are_one_observers_first_k_in_viewing_order():
    points, observers = _scanpaths([12, 15, 9])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        target, weights = form_targets(points, observers, "scanpath", 10, rng)
        observer = round(target[0, 0] * 10)
        n = min(10, [12, 15, 9][observer])
        expected = np.array([(observer / 10, k / 100) for k in range(n)], np.float32)
        np.testing.assert_array_equal(target, expected)
        np.testing.assert_array_equal(weights, np.ones(n, np.float32))
        seen.add(observer)
    assert seen == {0, 1, 2}  # a random observer each time
    # "observer" also keeps the order, but a long scanpath loses random points, not its end
    target, _ = form_targets(points, observers, "observer", 10, np.random.default_rng(1))
    assert len(target) == 10 and (np.diff(target[:, 1]) > 0).all()


@pytest.mark.parametrize("flip", [False, True])
def test_viewing_order_survives_the_dataset(small_osie, flip):
    stim = load_dataset("osie", small_osie).split("train")[0]
    size = (96, 128)

    def targets(points, observers, rng):
        points, weights = form_targets(points, observers, "scanpath", 5, rng)
        return {"points": points, "weights": weights}

    augment = AugmentConfig(hflip=float(flip), scale=(1.0, 1.0))
    dataset = FixationDataset([[stim]], size, targets, augment=augment)
    for epoch in range(4):
        sample = dataset[(epoch, 0)]
        assert sample["flip"] == flip
        points = sample["points"].numpy()  # (K, 2) normalized
        matches = []
        for path in stim.scanpaths:
            x = path.x / stim.width
            x = 1.0 - x if flip else x
            expected = np.stack([x, path.y / stim.height], axis=1)[:5]
            if len(expected) == len(points) and np.allclose(points, expected, atol=1e-5):
                matches.append(path.observer)
        assert len(matches) >= 1  # the first (up to) 5 fixations of one observer, in order


def test_the_scanpath_config_trains_sequentially():
    config = load_config(REPO / "configs/saltr-lite0-scanpath.yaml")
    assert config.model.name == "saltr-lite0-scanpath" and config.model.targets == "scanpath"
    assert [s.name for s in config.data.train] == ["osie"] and config.data.val.split == "val"
    assert tuple(config.data.augment.scale) == (1.0, 1.0)  # no crop drops mid-scanpath points
    overrides = {**config.model.overrides, "backbone_pretrained": False}
    task = SaltrTask(ModelConfig(config.model.name, overrides, "scanpath"), (64, 96))
    model = task.build_model()
    assert model.config.matching == "sequential" and model.config.num_queries == 30
    assert isinstance(task.criterion.matcher, SequentialMatcher) and task.max_targets == 30


def test_query_zero_learns_where_scanpaths_start(small_osie):
    """A tiny model on three real images, 60 steps: query 0 moves to the first fixations."""
    torch.manual_seed(0)
    overrides = {**TINY_MODEL, "num_queries": 8, "dropout": 0.0, "n_points": 2}
    task = SaltrTask(ModelConfig("saltr-lite0-scanpath", overrides, "scanpath"), (96, 128))
    model = task.build_model()
    data = load_dataset("osie", small_osie).split("train")
    stimuli = [data[i] for i in range(3)]
    dataset = FixationDataset([stimuli], (96, 128), task.make_targets)
    images = torch.stack([dataset.plain_image(i) for i in range(3)])  # (3, 3, 96, 128)
    with torch.no_grad():
        features = task.encode(model, images)  # frozen backbone: computed once
    firsts = [
        np.array([(p.x[0] / s.width, p.y[0] / s.height) for p in s.scanpaths]) for s in stimuli
    ]  # per image (observers, 2)

    def distance_to_firsts(points: np.ndarray) -> float:
        """Mean distance from each image's point (3, 2) to that image's first fixations."""
        return float(
            np.mean(
                [np.linalg.norm(f - p, axis=1).mean() for f, p in zip(firsts, points, strict=True)]
            )
        )

    uniform = np.random.default_rng(0).random((2000, 3, 2))
    chance = float(np.mean([distance_to_firsts(u) for u in uniform]))
    with torch.no_grad():
        before = distance_to_firsts(
            task.forward_features(model, features, {})["pred_points"][:, 0].numpy()
        )
    optimizer = torch.optim.AdamW(
        [p for n, p in model.named_parameters() if not task.is_backbone(n)], lr=3e-3
    )
    model.train()
    for step in range(60):
        samples = [dataset[(step, i)] for i in range(3)]  # a random observer per image and step
        batch = {
            "points": [s["points"] for s in samples],
            "weights": [s["weights"] for s in samples],
        }
        loss = task.loss(task.forward_features(model, features, batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        outputs = task.forward_features(model, features, {})
    after = distance_to_firsts(outputs["pred_points"][:, 0].numpy())
    assert after < 0.7 * chance and after < before, (before, after, chance)
    # query 0 is nearer the first fixations than the last query is
    last = distance_to_firsts(outputs["pred_points"][:, -1].numpy())
    assert after < last, (after, last)
