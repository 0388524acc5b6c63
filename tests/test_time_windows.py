"""Viewing-time windows: onsets, dwell, empirical window densities and per-window scoring."""

from __future__ import annotations

import numpy as np
import pytest

from salience.data.dataset import Scanpath, Stimulus
from salience.data.windows import (
    DEFAULT_WINDOWS,
    Window,
    dwell_times,
    fixation_times,
    scanpath_onsets,
    window_dataset,
)
from salience.evaluation import metrics
from salience.evaluation.windows import empirical_window_density, evaluate_window
from salience.models.baselines import CenterBiasGaussian


def _scanpath(x, y, durations, onset=None, observer="a") -> Scanpath:
    return Scanpath(
        observer,
        np.asarray(x, float),
        np.asarray(y, float),
        np.asarray(durations, float),
        None if onset is None else np.asarray(onset, float),
    )


def test_onsets_are_recorded_or_the_sum_of_earlier_durations():
    derived = scanpath_onsets(_scanpath([1, 2, 3], [1, 2, 3], [0.2, 0.3, 0.5]))
    assert derived == pytest.approx([0.0, 0.2, 0.5])
    recorded = [0.25, 0.6, 1.1]
    kept = scanpath_onsets(_scanpath([1, 2, 3], [1, 2, 3], [0.2, 0.3, 0.5], onset=recorded))
    assert kept.tolist() == recorded


def test_real_onsets_osie_derived_nus_scene_recorded(osie, nus_scene):
    path = osie[0].scanpaths[0]
    assert path.onset is None
    want, elapsed = [], 0.0
    for duration in path.duration:
        want.append(elapsed)
        elapsed += duration
    assert scanpath_onsets(path) == pytest.approx(want)
    recorded = nus_scene[0].scanpaths[0]
    assert recorded.onset is not None
    np.testing.assert_array_equal(scanpath_onsets(recorded), recorded.onset)


def test_unknown_durations_are_an_error():
    mouse = _scanpath([1, 2], [1, 2], [np.nan, np.nan])
    with pytest.raises(ValueError, match="durations are unknown"):
        scanpath_onsets(mouse)
    stim = Stimulus("m", None, (10, 10), (mouse,))
    with pytest.raises(ValueError, match="durations are unknown"):
        empirical_window_density(stim, DEFAULT_WINDOWS[0], 1.0)


def test_bad_windows_are_an_error():
    for start, end in [(1.0, 1.0), (-0.5, 1.0), (2.0, 1.0), (0.0, np.inf)]:
        with pytest.raises(ValueError, match="start < end"):
            Window(start, end)


def test_dwell_is_the_overlap_with_each_window():
    rng = np.random.default_rng(0)
    onsets = rng.uniform(0, 3.5, 40)
    durations = rng.uniform(0.01, 1.5, 40)
    windows = [*DEFAULT_WINDOWS, Window(0.5, 0.75)]
    dwell = dwell_times(onsets, durations, windows)
    # independently: count 0.1 ms time steps inside both the fixation and the window
    step = 1e-4
    t = np.arange(0, 5, step) + step / 2
    for i in range(len(onsets)):
        fixating = (t >= onsets[i]) & (t < onsets[i] + durations[i])
        for k, w in enumerate(windows):
            inside = fixating & (t >= w.start) & (t < w.end)
            assert dwell[i, k] == pytest.approx(inside.sum() * step, abs=2 * step)
    assert dwell_times(np.array([0.5]), np.array([2.0]), DEFAULT_WINDOWS).tolist() == [
        [0.5, 1.0, 0.5]
    ]


def test_window_density_weighs_fixations_by_dwell():
    # derived onsets 0, 0.6, 0.8, 1.6: dwell in 0-1 s is 0.6, 0.2, 0.2 (the last one 0)
    path = _scanpath([10.5, 30.5, 10.5, 45.5], [5.5, 20.5, 5.5, 25.5], [0.6, 0.2, 0.8, 1.0])
    stim = Stimulus("s", None, (32, 48), (path,))
    density = empirical_window_density(stim, Window(0.0, 1.0), 2.0)
    assert density.sum() == pytest.approx(1.0)
    at_a = metrics.empirical_density([10.5], [5.5], (32, 48), 2.0)
    at_b = metrics.empirical_density([30.5], [20.5], (32, 48), 2.0)
    np.testing.assert_allclose(density, 0.8 * at_a + 0.2 * at_b, atol=1e-12)
    with pytest.raises(ValueError, match="no fixation dwells"):
        empirical_window_density(stim, Window(5.0, 6.0), 2.0)


def test_window_datasets_split_real_fixations_by_onset(osie):
    data = osie.split("val").subset(osie.split("val").ids[:5])
    windows = [*DEFAULT_WINDOWS, Window(3.0, 100.0)]
    parts = [window_dataset(data, w) for w in windows]
    for i, stim in enumerate(data):
        onsets, _ = fixation_times(stim)
        counts = [part[i].n_fixations for part in parts]
        assert sum(counts) == stim.n_fixations
        assert counts[0] == np.sum(onsets < 1.0)
        assert all(np.all((s.onset >= 1.0) & (s.onset < 2.0)) for s in parts[1][i].scanpaths)


def test_evaluate_window_compares_maps_with_the_dwell_weighted_density(osie):
    data = osie.split("val").subset(osie.split("val").ids[:2])
    window = Window(1.0, 2.0)
    model = CenterBiasGaussian()
    result = evaluate_window(model, data, window, center_bias=model)
    stim = data[0]
    sigma = osie.ppd(stim)
    in_window = window_dataset(data, window)[0]
    xs, ys = in_window.fixations()
    log_density = model.log_density(None, stim.size)
    want = metrics.evaluate_map(
        log_density,
        xs,
        ys,
        mode="probabilistic",
        ref_map=empirical_window_density(stim, window, sigma),
        sigma_px=sigma,
        baseline_log_density=log_density,
    )
    scores = result.per_image[stim.id]
    assert scores["CC"] == pytest.approx(want["cc"]) and scores["NSS"] == pytest.approx(want["nss"])
    assert scores["IG"] == pytest.approx(0.0, abs=1e-12)
    unweighted = metrics.cc(
        metrics.optimal_saliency_map(log_density, "cc", sigma_px=sigma),
        metrics.empirical_density(xs, ys, stim.size, sigma),
    )
    assert abs(scores["CC"] - unweighted) > 1e-4  # the dwell-weighted reference, not onsets
