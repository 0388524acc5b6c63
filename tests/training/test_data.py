"""Augmentations move fixations with the pixels; samples, targets and batches have the right
form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salience.data import load_dataset
from salience.training.config import AugmentConfig, ConfigError, config_from_dict
from salience.training.data import EpochSampler, FixationDataset, Transform, collate
from salience.training.targets import form_targets
from tests.training.conftest import tiny_tree


def _dot_image(size: tuple[int, int], x: float, y: float, radius: int = 2) -> np.ndarray:
    """Black uint8 image with a white square of side 2 * radius + 1 centred on pixel (x, y)."""
    image = np.zeros((*size, 3), np.uint8)
    col, row = int(x), int(y)
    image[row - radius : row + radius + 1, col - radius : col + radius + 1] = 255
    return image


def _centroid(image: np.ndarray) -> tuple[float, float]:
    """Brightness-weighted centre in continuous pixel coordinates (pixel j spans [j, j + 1))."""
    weight = image[..., 0].astype(np.float64)
    rows, cols = np.indices(weight.shape)
    total = weight.sum()
    return float(((cols + 0.5) * weight).sum() / total), float(
        ((rows + 0.5) * weight).sum() / total
    )


def test_flip_maps_x_to_width_minus_x():
    size = (6, 10)
    transform = Transform(size, size, (0, 0), size, flip=True)
    x, y, keep = transform.points(np.array([0.0, 2.25, 9.99]), np.array([1.0, 3.5, 5.0]))
    assert keep.all()
    np.testing.assert_allclose(x, [10.0, 7.75, 0.01])
    np.testing.assert_allclose(y, [1.0, 3.5, 5.0])
    image = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    np.testing.assert_array_equal(transform.image(image), image[:, ::-1])


@pytest.mark.parametrize("seed", range(6))
def test_scale_crop_flip_move_a_dot_and_its_fixation_together(seed):
    rng = np.random.default_rng(seed)
    source, out = (150, 200), (96, 128)
    augment = AugmentConfig(hflip=0.5, scale=(1.0, 1.6))
    checked = 0
    for _ in range(10):
        x0, y0 = rng.uniform(5, 195), rng.uniform(5, 145)
        x0, y0 = int(x0) + 0.5, int(y0) + 0.5  # the dot's centre is this pixel's centre
        transform = Transform.draw(source, out, augment, rng)
        image = transform.image(_dot_image(source, x0, y0))
        x, y, keep = transform.points(np.array([x0]), np.array([y0]))
        inside = keep[0] and 3 <= x[0] <= out[1] - 3 and 3 <= y[0] <= out[0] - 3
        if not inside:
            if not keep[0]:
                cx = x0 * transform.resized[1] / source[1] - transform.offset[1]
                cy = y0 * transform.resized[0] / source[0] - transform.offset[0]
                assert not (0 <= cx < out[1] and 0 <= cy < out[0])
            continue
        cx, cy = _centroid(image)
        assert abs(cx - x[0]) < 0.5 and abs(cy - y[0]) < 0.5, (transform, cx, cy, x, y)
        checked += 1
    assert checked >= 3


def test_crop_drops_fixations_outside():
    transform = Transform((100, 100), (200, 200), (50, 60), (100, 100), flip=False)
    x, y, keep = transform.points(np.array([10.0, 40.0, 90.0]), np.array([50.0, 50.0, 50.0]))
    # scaled x: 20, 80, 180 -> minus 60: -40 (out), 20, 120 (out); y: 100 - 50 = 50
    np.testing.assert_array_equal(keep, [False, True, False])
    np.testing.assert_allclose(x, [20.0])
    np.testing.assert_allclose(y, [50.0])


def _pooled(points, observers, rng):
    return {"points": points.astype(np.float32), "observers": observers}


def test_dataset_samples_are_deterministic_and_normalized(small_osie):
    data = load_dataset("osie", small_osie).split("train")
    dataset = FixationDataset(
        [data, data.subset(data.ids[:2])], (96, 128), _pooled, AugmentConfig(0.5, (1.0, 1.4))
    )
    assert len(dataset) == len(data) + 2  # concatenated
    sample = dataset[(3, 1)]
    assert sample["image"].shape == (3, 96, 128) and sample["image"].dtype == torch.float32
    assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    points = sample["points"]
    assert points.ndim == 2 and points.shape[1] == 2 and len(points) > 0
    assert (points >= 0).all() and (points < 1).all()
    assert len(sample["observers"]) == len(points)
    again = dataset[(3, 1)]
    assert torch.equal(sample["image"], again["image"]) and torch.equal(points, again["points"])
    epochs = [dataset[(e, 1)] for e in range(6)]
    assert len({(s["flip"], len(s["points"])) for s in epochs}) > 1  # augmentation varies
    plain = FixationDataset([data], (96, 128), _pooled)[1]
    assert not plain["flip"]
    stim = data[1]
    assert len(plain["points"]) == stim.n_fixations  # a resize drops nothing
    torch.testing.assert_close(plain["image"], dataset.plain_image(1))


def test_collate_keeps_variable_and_empty_targets():
    samples = [
        {"image": torch.zeros(3, 4, 5), "points": torch.rand(7, 2), "id": "a"},
        {"image": torch.ones(3, 4, 5), "points": torch.zeros(0, 2), "id": "b"},
    ]
    batch = collate(samples)
    assert batch["image"].shape == (2, 3, 4, 5)
    assert [len(p) for p in batch["points"]] == [7, 0]
    assert batch["id"] == ["a", "b"]


def test_epoch_sampler_resumes_inside_an_epoch():
    dataset = list(range(10))
    sampler = EpochSampler(dataset, seed=3, batch_size=2)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(i for _, i in full) == dataset and {e for e, _ in full} == {2}
    sampler.set_epoch(2, skip=2)  # steps
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full


def test_processes_share_each_global_batch():
    dataset = list(range(23))  # 5 global batches of 4, 3 images left over
    one = EpochSampler(dataset, seed=1, batch_size=4)
    ranks = [EpochSampler(dataset, seed=1, batch_size=4, rank=r, world_size=2) for r in (0, 1)]
    for epoch, skip in [(0, 0), (4, 3)]:
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch, skip)
        whole = list(one)
        assert len(whole) == (5 - skip) * 4 and len(set(whole)) == len(whole)
        first, second = list(ranks[0]), list(ranks[1])
        assert len(ranks[0]) == len(first) == (5 - skip) * 2
        # step k of one process is rank 0's k-th pair followed by rank 1's
        merged = [
            x for k in range(5 - skip) for x in first[2 * k : 2 * k + 2] + second[2 * k : 2 * k + 2]
        ]
        assert merged == whole
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        EpochSampler(dataset, seed=1, batch_size=4, rank=0, world_size=3)


def _clustered(n_per: int, observers: int, rng) -> tuple[np.ndarray, np.ndarray]:
    centers = np.array([[0.2, 0.3], [0.7, 0.6], [0.5, 0.9]])
    points = np.concatenate(
        [c + 0.01 * rng.standard_normal((n_per * (k + 1), 2)) for k, c in enumerate(centers)]
    )
    return points, rng.integers(0, observers, len(points))


def test_target_kinds():
    rng = np.random.default_rng(0)
    points, observers = _clustered(20, 5, rng)  # 20 + 40 + 60 points
    sub, w = form_targets(points, observers, "subsample", 50, rng)
    assert sub.shape == (50, 2) and (w == 1).all()
    assert all(np.isclose(points, p).all(1).any() for p in sub)  # a subset of the fixations
    one, w = form_targets(points, observers, "observer", 100, rng)
    matches = [np.flatnonzero(np.isclose(points, p).all(1))[0] for p in one]
    assert len(set(observers[matches])) == 1 and (w == 1).all()
    centroids, w = form_targets(points, observers, "kmeans", 3, rng)
    assert len(centroids) == 3 and w.max() == 1.0
    order = np.argsort(w)
    np.testing.assert_allclose(w[order], [20 / 60, 40 / 60, 1.0], atol=0.02)
    few, w = form_targets(points[:5], observers[:5], "kmeans", 10, rng)
    np.testing.assert_allclose(few, points[:5].astype(np.float32))
    assert (w == 1).all()


@pytest.mark.parametrize("kind", ["subsample", "observer", "scanpath", "kmeans"])
def test_no_fixations_give_an_empty_target(kind):
    points, weights = form_targets(
        np.zeros((0, 2)), np.zeros(0, int), kind, 10, np.random.default_rng(0)
    )
    assert points.shape == (0, 2) and weights.shape == (0,)


def test_each_source_can_have_its_own_mirroring(small_osie, tmp_path):
    data = load_dataset("osie", small_osie).split("train")
    pages = data.subset(data.ids[:3])
    always, never = AugmentConfig(1.0, (1.0, 1.0)), AugmentConfig(0.0, (1.0, 1.0))
    dataset = FixationDataset([data, pages], (96, 128), _pooled, [always, never])
    flips = [dataset[(e, i)]["flip"] for e in range(3) for i in range(len(dataset))]
    assert flips.count(True) == 3 * len(data)  # every photo sample mirrored, no page one
    assert not any(dataset[(e, len(data) + i)]["flip"] for e in range(3) for i in range(3))
    with pytest.raises(ValueError, match="2 augmentations for 1 datasets"):
        FixationDataset([data], (96, 128), _pooled, [always, never])
    tree = tiny_tree(small_osie, tmp_path)
    tree["data"]["train"][0]["hflip"] = 1.5
    with pytest.raises(ConfigError, match=r"data.train\[0\].hflip"):
        config_from_dict(tree)
