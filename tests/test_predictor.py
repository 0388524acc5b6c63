"""Predictor: every kind of image in, a density at the input's resolution and ordered fixations
out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from salience.io.images import ImageReadError
from salience.models.dense import DenseConfig, DenseDensity, DenseSaliency
from salience.predictor import Prediction, Predictor, Scanpath, as_rgb


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    config = DenseConfig(backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96)
    return Predictor(DenseDensity(DenseSaliency(config)), n_fixations=5)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    image[10:30, 50:80] = 255  # a bright patch makes the map non-trivial
    return image


def _check(result: Prediction, size: tuple[int, int]) -> None:
    assert result.size == size
    assert result.density.shape == size and result.log_density.shape == size
    assert result.density.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(np.exp(result.log_density), result.density, rtol=1e-9)
    assert result.fixations.shape == (5, 2) and result.fixation_probs.shape == (5,)
    assert (result.fixations[:, 0] >= 0).all() and (result.fixations[:, 0] < size[1]).all()
    assert (result.fixations[:, 1] >= 0).all() and (result.fixations[:, 1] < size[0]).all()
    assert ((result.fixation_probs > 0) & (result.fixation_probs <= 1)).all()
    display = result.display_map
    assert display.shape == size and display.min() >= 0 and display.max() <= 1


def test_numpy_pil_and_path_give_the_same_result(predictor, photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    results = [predictor.predict(x) for x in (photo, Image.fromarray(photo), path, str(path))]
    for result in results:
        _check(result, (60, 90))
        np.testing.assert_allclose(result.density, results[0].density, atol=1e-12)
    assert results[2].source == str(path)
    data = results[2].fixations_dict()
    assert [f["order"] for f in data["fixations"]] == [1, 2, 3, 4, 5]
    assert data["size"] == {"height": 60, "width": 90}


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: im.mean(axis=2).astype(np.uint8),  # gray
        lambda im: im.astype(np.float32) / 255.0,  # float in [0, 1]
        lambda im: np.concatenate([im, np.full((*im.shape[:2], 1), 255, np.uint8)], axis=2),
        lambda im: im.astype(np.uint16) * 257,  # 16-bit
    ],
    ids=["gray", "float", "rgba", "16-bit"],
)
def test_other_array_kinds(predictor, photo, convert):
    _check(predictor.predict(convert(photo)), (60, 90))


def test_exif_orientation_is_respected(predictor, photo, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: show rotated by 90 degrees
    Image.fromarray(photo).save(path, exif=exif)
    assert predictor.predict(path).size == (90, 60)
    with Image.open(path) as im:
        assert predictor.predict(im).size == (90, 60)


def test_any_size(predictor):
    for size in [(7, 5), (300, 41), (33, 600)]:
        image = np.full((*size, 3), 128, np.uint8)
        _check(predictor.predict(image), size)


def test_batch_equals_one_by_one(predictor, photo):
    images = [photo, photo[:40], photo[:, ::-1], photo]
    batch = predictor.predict_batch(images, batch_size=3)
    for image, result in zip(images, batch, strict=True):
        np.testing.assert_allclose(result.density, predictor.predict(image).density, atol=1e-9)


def test_fixations_are_ordered_peaks(predictor, photo):
    result = predictor.predict(photo)
    x, y = result.fixations[0]
    assert result.density[int(y), int(x)] >= np.quantile(result.density, 0.95)


def test_bad_input_is_a_clear_error(predictor, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match=r"broken\.jpg"):
        predictor.predict(broken)
    with pytest.raises(ImageReadError, match="not found"):
        predictor.predict(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="NaN"):
        predictor.predict(np.full((10, 10, 3), np.nan))
    with pytest.raises(ImageReadError):
        predictor.predict(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(TypeError, match="path, PIL image or numpy array"):
        predictor.predict(42)
    with pytest.raises(ValueError):
        Predictor(predictor.model, n_fixations=0)
    with pytest.raises(ValueError):
        predictor.predict_batch([], batch_size=0)


def test_as_rgb_refuses_huge_arrays_before_decoding():
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (30_000, 30_000, 3), (0, 0, 0))
    with pytest.raises(ImageReadError, match="larger"):
        as_rgb(huge)


def test_sampled_scanpaths_are_reproducible(predictor, photo):
    result = predictor.predict(photo)
    a = predictor.sample_scanpaths(result, n=50, length=4, seed=3)
    b = predictor.sample_scanpaths(result, n=50, length=4, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.x.shape == (50, 4)


def test_predict_samples_scanpaths_only_when_asked(predictor, photo):
    plain = predictor.predict(photo)
    assert plain.scanpaths == [] and plain.scanpath_seed is None
    assert plain.fixations_dict()["scanpaths"] == []
    result = predictor.predict(photo, scanpaths=3, seed=1)
    assert len(result.scanpaths) == 3 and result.scanpath_seed == 1
    np.testing.assert_allclose(result.density, plain.density, atol=1e-12)
    height, width = result.size
    for path in result.scanpaths:
        assert len(path) == predictor.scanpath_length == 10
        assert path.points.shape == (10, 2)
        assert ((path.x >= 0) & (path.x < width) & (path.y >= 0) & (path.y < height)).all()
        assert (path.duration > 0).all()
    # the same numbers as sample_scanpaths with that seed
    sampled = predictor.sample_scanpaths(result, n=3, length=10, seed=1)
    np.testing.assert_array_equal(np.stack([p.x for p in result.scanpaths]), sampled.x)
    np.testing.assert_array_equal(
        np.stack([p.duration for p in result.scanpaths]), sampled.duration
    )


def test_scanpaths_are_reproducible_by_seed(predictor, photo):
    def xy(seed: int) -> np.ndarray:
        (path,) = predictor.predict(photo, scanpaths=1, seed=seed).scanpaths
        return np.concatenate([path.points.ravel(), path.duration])

    np.testing.assert_array_equal(xy(7), xy(7))
    assert not np.allclose(xy(7), xy(8))
    batch = predictor.predict_batch([photo, photo[:40]], batch_size=2, scanpaths=1, seed=7)
    np.testing.assert_array_equal(
        np.concatenate([batch[0].scanpaths[0].points.ravel(), batch[0].scanpaths[0].duration]),
        xy(7),
    )
    assert len(batch[1].scanpaths) == 1


def test_scanpaths_round_trip_through_json(predictor, photo):
    result = predictor.predict(photo, scanpaths=2, seed=0)
    data = json.loads(result.fixations_json())
    assert data["scanpath_seed"] == 0 and len(data["scanpaths"]) == 2
    first = data["scanpaths"][0]["fixations"]
    assert [f["order"] for f in first] == list(range(1, 11))
    assert set(first[0]) == {"order", "x", "y", "duration"}
    assert {"image", "size", "pixels_per_degree", "fixations"} <= set(data)  # kept as before
    for original, text in zip(result.scanpaths, data["scanpaths"], strict=True):
        back = Scanpath.from_dict(text)
        np.testing.assert_array_equal(back.points, original.points)
        np.testing.assert_array_equal(back.duration, original.duration)


def test_scanpath_arguments_are_checked(predictor, photo):
    with pytest.raises(ValueError, match="scanpaths"):
        predictor.predict(photo, scanpaths=-1)
    with pytest.raises(ValueError, match="scanpaths"):
        predictor.predict_batch([photo], scanpaths=-1)
    with pytest.raises(ValueError, match="scanpath_length"):
        Predictor(predictor.model, scanpath_length=0)
    short = Predictor(predictor.model, scanpath_length=3)
    assert len(short.predict(photo, scanpaths=1).scanpaths[0]) == 3
