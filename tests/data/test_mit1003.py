"""MIT1003 reader: ALLSTIMULI/*.jpeg plus DATA/<observer>/<stem>.mat raw 240 Hz gaze."""

import json

import numpy as np
import pytest
import scipy.io
from PIL import Image

from salience.data.dataset import DataFormatError
from salience.data.mit1003 import (
    MIT1003_PIXELS_PER_DEGREE,
    SAMPLING_RATE_HZ,
    extract_fixations,
    load_mit1003,
)

WIDTH, HEIGHT = 200, 150
STEM = "i05june05_static_street_boston_p1010764"
DWELL, TRAVEL = 72, 6  # samples: 300 ms fixations, 25 ms saccades


def _trace(points, seed=0):
    """Raw gaze that rests DWELL samples on each (x, y) and moves in TRAVEL samples between."""
    samples, previous = [], None
    for point in np.asarray(points, dtype=np.float64):
        if previous is not None:
            for t in np.linspace(0, 1, TRAVEL + 2)[1:-1]:
                samples.append(previous + (point - previous) * t)
        samples.extend([point] * DWELL)
        previous = point
    samples = np.array(samples)
    return samples + np.random.default_rng(seed).normal(0, 0.3, samples.shape)


def _write_gaze(root, observer, stem, eye_data):
    path = root / "DATA" / observer / f"{stem}.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {stem: {"DATA": {"eyeData": eye_data}}})
    return path


def _write_image(root, stem, size=(WIDTH, HEIGHT)):
    path = root / "ALLSTIMULI" / f"{stem}.jpeg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 100, 50)).save(path)


# 1-based (x, y) = (col, row): the central start, two image fixations, a blink, one off-image
HP_POINTS = [(100, 75), (30, 20), (150.5, 100.25), (-40, -40), (60, 190)]


@pytest.fixture
def root(tmp_path):
    _write_image(tmp_path, STEM)
    _write_image(tmp_path, "istatic_other", size=(120, 90))
    _write_gaze(tmp_path, "hp", STEM, _trace(HP_POINTS))
    _write_gaze(tmp_path, "ajs", STEM, _trace([(100, 75), (180, 140)], seed=1))
    _write_gaze(tmp_path, "ajs", "istatic_other", np.zeros((0, 2)))
    scipy.io.savemat(tmp_path / "DATA" / "ajs" / "CalibrationData.mat", {"calib": np.eye(2)})
    scipy.io.savemat(tmp_path / "DATA" / "ajs" / "shuff_stimnames.mat", {"names": ["a"]})
    return tmp_path


def test_extract_fixations_finds_each_resting_place():
    x, y, onset, duration = extract_fixations(_trace(HP_POINTS))
    points = np.array(HP_POINTS, dtype=np.float64)
    np.testing.assert_allclose(x, points[:, 0], atol=0.3)
    np.testing.assert_allclose(y, points[:, 1], atol=0.3)
    starts = np.arange(len(points)) * (DWELL + TRAVEL) / SAMPLING_RATE_HZ
    np.testing.assert_allclose(onset, starts, atol=6 / SAMPLING_RATE_HZ)
    np.testing.assert_allclose(duration, DWELL / SAMPLING_RATE_HZ, atol=12 / SAMPLING_RATE_HZ)


def test_extract_fixations_without_saccade_is_one_fixation_ignoring_nan():
    samples = np.full((100, 2), 40.0)
    samples[10:20] = np.nan
    x, y, onset, duration = extract_fixations(samples)
    assert (x.tolist(), y.tolist(), onset.tolist()) == ([40.0], [40.0], [0.0])
    assert duration[0] == pytest.approx(100 / SAMPLING_RATE_HZ)
    assert all(len(a) == 0 for a in extract_fixations(np.zeros((0, 2))))


def test_extract_fixations_absorbs_too_short_fixations():
    samples = _trace([(20, 20), (100, 100)])
    short = np.array([(60.0, 60.0)] * 8)  # 33 ms pause halfway through the saccade
    samples = np.concatenate([samples[:75], short, samples[75:]])
    x, _, _, _ = extract_fixations(samples)
    np.testing.assert_allclose(x, [20, 100], atol=0.5)


def test_loads_observers_with_zero_based_coordinates(root):
    ds = load_mit1003(root)
    assert ds.kind == "eye" and ds.pixels_per_degree == MIT1003_PIXELS_PER_DEGREE == 35.0
    assert ds.ids == [STEM, "istatic_other"]
    stim = ds.by_id(STEM)
    assert stim.size == (HEIGHT, WIDTH)
    assert [s.observer for s in stim.scanpaths] == ["ajs", "hp"]
    ajs, hp = stim.scanpaths
    # the central start is left out; the blink and the off-image fixation are dropped
    np.testing.assert_allclose(hp.x, [29, 149.5], atol=0.3)
    np.testing.assert_allclose(hp.y, [19, 99.25], atol=0.3)
    np.testing.assert_allclose(ajs.x, [179], atol=0.3)
    np.testing.assert_allclose(ajs.y, [139], atol=0.3)
    np.testing.assert_allclose(hp.onset, [78, 156] / np.float64(SAMPLING_RATE_HZ), atol=0.025)
    assert ((hp.duration > 0.24) & (hp.duration <= 0.3)).all()
    assert ds.dropped == 2
    assert ds.by_id("istatic_other").scanpaths == ()


def test_include_initial_fixation(root):
    ds = load_mit1003(root, include_initial_fixation=True)
    ajs, hp = ds.by_id(STEM).scanpaths
    np.testing.assert_allclose(hp.x, [99, 29, 149.5], atol=0.3)
    assert hp.onset[0] == 0.0
    assert len(ajs) == 2


def test_split_json(root):
    (root / "split.json").write_text(json.dumps({"test": [STEM]}))
    assert load_mit1003(root).split("test").ids == [STEM]


def _error(root):
    with pytest.raises(DataFormatError) as info:
        load_mit1003(root)
    return str(info.value)


def test_gaze_file_without_image_is_an_error(root):
    _write_gaze(root, "hp", "inot_in_allstimuli", _trace([(1, 1)]))
    message = _error(root)
    assert "inot_in_allstimuli" in message and "missing image" in message


def test_unparseable_mat_is_an_error(root):
    (root / "DATA" / "hp" / f"{STEM}.mat").write_bytes(b"garbage" * 20)
    assert f"hp/{STEM}.mat" in _error(root)


@pytest.mark.parametrize(
    "content",
    [
        {"wrong_name": {"DATA": {"eyeData": np.zeros((5, 2))}}},
        {STEM: {"OTHER": {"eyeData": np.zeros((5, 2))}}},
        {STEM: {"DATA": {"samples": np.zeros((5, 2))}}},
        {STEM: {"DATA": {"eyeData": np.zeros((5, 1))}}},
        {STEM: {"DATA": {"eyeData": np.array(["ab", "cd"])}}},
        {STEM: np.zeros(3)},
    ],
)
def test_wrong_struct_or_columns_are_errors(root, content):
    scipy.io.savemat(root / "DATA" / "hp" / f"{STEM}.mat", content)
    assert f"hp/{STEM}.mat" in _error(root)


def test_missing_folders_are_errors(tmp_path):
    assert "ALLSTIMULI" in _error(tmp_path)
    (tmp_path / "ALLSTIMULI").mkdir()
    (tmp_path / "DATA").mkdir()
    assert "no .jpeg" in _error(tmp_path)
