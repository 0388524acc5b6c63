"""The scanpath sampler: reproducibility, fidelity to density and priors, IOR, fitting on OSIE."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from salience.evaluation.metrics import empirical_density
from salience.models.sampler import ScanpathSampler, default_ppd, greedy_fixations

UNIFORM_START = {"start_edges": (0.0, 100.0), "start_probs": (1.0,)}  # no pull to the center


def _sampler(**changes) -> ScanpathSampler:
    """A hand-made sampler: amplitudes uniform over 0-10 degrees, start near the center."""
    base = ScanpathSampler(
        amplitude_edges=tuple(np.arange(11.0)),
        amplitude_probs=(0.1,) * 10,
        start_edges=(0.0, 1.0, 2.0, 3.0),
        start_probs=(0.2, 0.5, 0.3),
        first_duration=(np.log(0.15), 0.5),
        duration=(np.log(0.2), 0.5),
        ior_sigma_deg=2.0,
        ior_strength=0.8,
        fitted_on="hand-made",
    )
    return replace(base, **changes)


def _random_density(shape=(600, 800), seed=0) -> np.ndarray:
    density = np.random.default_rng(seed).random(shape) ** 4
    return density / density.sum()


def test_same_seed_same_scanpaths() -> None:
    sampler, density = _sampler(), _random_density()
    a = sampler.sample(density, 50, 6, 7, 24.0)
    b = sampler.sample(density, 50, 6, np.random.default_rng(7), 24.0)
    c = sampler.sample(density, 50, 6, 8, 24.0)
    for field in ("x", "y", "duration"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert getattr(a, field).shape == (50, 6)
    assert not np.array_equal(a.x, c.x)
    assert (a.x >= 0).all() and (a.x < 800).all() and (a.y >= 0).all() and (a.y < 600).all()
    assert (a.duration > 0).all()


def test_first_fixations_follow_the_density() -> None:
    # zero except two squares at the same distance from the center, holding 1/4 and 3/4
    density = np.zeros((300, 400))
    density[100:120, 50:70] = 1.0
    density[180:200, 330:350] = 3.0
    sampler = _sampler(**UNIFORM_START)
    paths = sampler.sample(density, 4000, 1, 0, 10.0)
    col, row = np.floor(paths.x[:, 0]).astype(int), np.floor(paths.y[:, 0]).astype(int)
    assert (density[row, col] > 0).all()
    heavy = (col >= 330).mean()
    assert abs(heavy - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 4000)
    # uniform within each square: mean at its center, spread of a uniform 20-pixel side
    in_light = col < 330
    assert paths.x[in_light, 0].mean() == pytest.approx(60.0, abs=0.5)
    assert paths.x[in_light, 0].std() == pytest.approx(20 / np.sqrt(12), rel=0.05)


def test_zero_density_pixels_are_never_fixated_within_a_cell() -> None:
    density = np.zeros((256, 256))
    density[:, ::2] = 1.0  # every other column: every grid cell mixes zero and non-zero pixels
    paths = _sampler(**UNIFORM_START).sample(density, 500, 5, 1, 8.0)
    assert (np.floor(paths.x).astype(int) % 2 == 0).all()


def test_start_prior_pulls_first_fixations_to_the_center() -> None:
    ppd = 20.0
    paths = _sampler().sample(np.ones((600, 800)), 2000, 1, 0, ppd)
    offset = np.hypot(paths.x[:, 0] - 400, paths.y[:, 0] - 300) / ppd
    assert offset.max() < 3.0 + 0.75  # the last start bin, plus half a grid cell
    # the start histogram's probabilities per 1-degree ring, within sampling error and gridding
    counts = np.histogram(offset, bins=[0, 1, 2, 3.75])[0] / 2000
    np.testing.assert_allclose(counts, [0.2, 0.5, 0.3], atol=0.05)


def test_sampled_amplitudes_follow_the_prior_on_a_uniform_density() -> None:
    probs = np.array([0.02, 0.08, 0.15, 0.2, 0.18, 0.13, 0.1, 0.07, 0.04, 0.03])
    sampler = _sampler(amplitude_probs=tuple(probs), ior_strength=0.0)
    ppd, n = 16.0, 6000  # a 60-degree image: from near its center, no border cuts a saccade
    paths = sampler.sample(np.ones((960, 960)), n, 2, 3, ppd)
    amplitude = np.hypot(np.diff(paths.x, axis=1), np.diff(paths.y, axis=1))[:, 0] / ppd
    observed = np.histogram(amplitude, bins=np.arange(11.0))[0] / n
    # sampling error is about 0.005 per bin; choosing cells at their centers adds a little
    np.testing.assert_allclose(observed, probs, atol=0.02)
    assert amplitude.max() < 10.0 + 0.7  # plus half the diagonal of a 15-pixel grid cell
    assert np.median(amplitude) == pytest.approx(4.4, abs=0.3)  # the prior's median: 4 + 0.05/0.18


def _return_rate(paths, ppd: float, radius_deg: float) -> float:
    """Fraction of fixations (from the third on) within ``radius_deg`` of one before the last."""
    x, y = paths.x / ppd, paths.y / ppd
    returns = []
    for t in range(2, x.shape[1]):
        d = np.hypot(x[:, : t - 1] - x[:, t, None], y[:, : t - 1] - y[:, t, None])
        returns.append((d < radius_deg).any(axis=1))
    return float(np.mean(returns))


def test_inhibition_of_return_reduces_returns() -> None:
    density, ppd = _random_density(seed=3), 24.0
    free = _sampler(ior_strength=0.0).sample(density, 1500, 8, 0, ppd)
    inhibited = _sampler(ior_strength=0.9, ior_sigma_deg=2.0).sample(density, 1500, 8, 0, ppd)
    rate_free, rate_inhibited = _return_rate(free, ppd, 1.0), _return_rate(inhibited, ppd, 1.0)
    assert rate_inhibited < 0.5 * rate_free


def test_sampling_is_fast() -> None:
    sampler, density = _sampler(), _random_density()
    sampler.sample(density, 10, 3, 0, 24.0)
    start = time.perf_counter()
    sampler.sample(density, 1000, 10, 0, 24.0)
    # about 0.2 s on one free core; generous, because tests share the machine
    assert time.perf_counter() - start < 2.0


def test_nowhere_to_go_falls_back_to_the_density() -> None:
    # the only mass is 25 degrees from the center, beyond both the start and amplitude priors
    density = np.zeros((200, 1000))
    density[90:110, 0:20] = 1.0
    paths = _sampler().sample(density, 100, 3, 0, 20.0)
    assert (paths.x < 20).all() and (paths.y >= 90).all() and (paths.y < 110).all()


def test_default_ppd_spans_osie_geometry() -> None:
    assert default_ppd((600, 800)) == pytest.approx(24.0)
    assert default_ppd((1600, 1200)) == pytest.approx(48.0)


def test_dict_round_trip_through_json() -> None:
    sampler = _sampler()
    again = ScanpathSampler.from_dict(json.loads(json.dumps(sampler.to_dict())))
    assert again == sampler
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        ScanpathSampler.from_dict({**sampler.to_dict(), "extra": 1})
    data = sampler.to_dict()
    del data["duration"]
    with pytest.raises(ValueError, match=r"missing keys \['duration'\]"):
        ScanpathSampler.from_dict(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amplitude_probs": (0.5,) * 10}, "sum to 1"),
        ({"amplitude_edges": (0.0, 1.0, 3.0), "amplitude_probs": (0.5, 0.5)}, "uniform bins"),
        ({"start_edges": (1.0, 2.0), "start_probs": (1.0,)}, "starting at 0"),
        ({"start_probs": (0.5, 0.5)}, "n \\+ 1 edges"),
        ({"ior_strength": 1.5}, "ior_strength"),
        ({"ior_sigma_deg": 0.0}, "ior_sigma_deg"),
        ({"duration": (0.0, -1.0)}, "duration"),
    ],
)
def test_invalid_parameters(changes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sampler(**changes)


@pytest.mark.parametrize(
    ("density", "message"),
    [
        (np.zeros((10, 10)), "zero everywhere"),
        (-np.ones((10, 10)), "negative"),
        (np.full((10, 10), np.nan), "NaN"),
        (np.ones(10), "2-D"),
    ],
)
def test_invalid_density(density, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sampler().sample(density, 2, 2, 0, 10.0)


def _blob(shape, center, sigma) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))


def test_greedy_fixations_take_peaks_in_order_of_mass() -> None:
    shape = (300, 400)
    density = 0.3 * _blob(shape, (100.5, 80.5), 10) + 0.7 * _blob(shape, (300.5, 200.5), 10)
    density /= density.sum()
    points, probs = greedy_fixations(density, 2, radius_px=20)
    np.testing.assert_allclose(points, [[300.5, 200.5], [100.5, 80.5]])
    # the mass of a 2-D Gaussian within 2 sigma is 1 - exp(-2)
    np.testing.assert_allclose(probs, np.array([0.7, 0.3]) * (1 - np.exp(-2)), rtol=0.02)


def test_greedy_fixations_stop_where_the_mass_ends() -> None:
    density = np.zeros((100, 100))
    density[40:45, 40:45] = 1.0
    points, probs = greedy_fixations(density, 5, radius_px=10)
    assert points.shape == (1, 2) and probs == pytest.approx([1.0])
    with pytest.raises(ValueError, match="radius_px"):
        greedy_fixations(density, 2, radius_px=0)


# --------------------------------------------------------------------------- fitted on OSIE


@pytest.fixture(scope="module")
def fitted(osie) -> ScanpathSampler:
    return ScanpathSampler.fit(osie.split("train"))


def test_fit_on_osie_train_learns_plausible_durations_and_ior(fitted: ScanpathSampler) -> None:
    # OSIE: median first fixation 0.16 s, later ones 0.19 s
    assert 0.13 < np.exp(fitted.first_duration[0]) < 0.18
    assert 0.16 < np.exp(fitted.duration[0]) < 0.22
    assert np.exp(fitted.first_duration[0]) < np.exp(fitted.duration[0])
    # what the likelihood says: weak, broad inhibition, not strong local IOR
    assert fitted.ior_sigma_deg >= 3.0 and 0.0 < fitted.ior_strength <= 0.5
    assert fitted.fitted_on == "osie/train"
    assert ScanpathSampler.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted


def test_fit_on_osie_reproduces_observed_saccades(osie, fitted: ScanpathSampler) -> None:
    """Sampled on val images with a model-like density, amplitudes and starts look like the data."""
    val = osie.split("val")
    rng = np.random.default_rng(0)
    sampled_amplitude, sampled_start, amplitude, start = [], [], [], []
    for stimulus in list(val)[:12]:
        ppd, (height, width) = val.ppd(stimulus), stimulus.size
        xs, ys = stimulus.fixations()
        density = empirical_density(xs, ys, stimulus.size, 2.0 * ppd) + 0.1 / (height * width)
        paths = fitted.sample(density, 200, 6, rng, ppd)
        sampled_amplitude.append(np.hypot(*np.diff([paths.x, paths.y], axis=2)).ravel() / ppd)
        sampled_start.append(np.hypot(paths.x[:, 0] - width / 2, paths.y[:, 0] - height / 2) / ppd)
        for sp in stimulus.scanpaths:
            amplitude.append(np.hypot(np.diff(sp.x[:6]), np.diff(sp.y[:6])) / ppd)
            start.append([np.hypot(sp.x[0] + 0.5 - width / 2, sp.y[0] + 0.5 - height / 2) / ppd])
    observed = np.median(np.concatenate(amplitude))
    sampled = np.median(np.concatenate(sampled_amplitude))
    assert 3.0 < observed < 5.5  # OSIE: 4.2 degrees
    assert 2.0 < sampled < 8.0 and abs(sampled - observed) < 2.5  # measured: 5.8 vs 4.2
    assert np.median(np.concatenate(sampled_start)) == pytest.approx(
        np.median(np.concatenate(start)), abs=1.0
    )  # measured on 40 val images: 4.7 vs 4.7 degrees


def test_fitted_amplitude_prior_prefers_near_targets(fitted: ScanpathSampler) -> None:
    edges, probs = np.array(fitted.amplitude_edges), np.array(fitted.amplitude_probs)
    per_area = probs / (np.pi * (edges[1:] ** 2 - edges[:-1] ** 2))
    near, mid, far = per_area[0], per_area[int(5 / 0.5)], per_area[int(15 / 0.5)]
    assert near > 3 * mid > 3 * far
    assert edges[-1] >= 20.0  # long saccades stay possible


def test_default_parameters_are_the_osie_train_fit(fitted: ScanpathSampler) -> None:
    default = ScanpathSampler()
    assert default.amplitude_edges == pytest.approx(fitted.amplitude_edges)
    assert default.start_edges == pytest.approx(fitted.start_edges)
    np.testing.assert_allclose(default.amplitude_probs, fitted.amplitude_probs, rtol=1e-3)
    np.testing.assert_allclose(default.start_probs, fitted.start_probs, rtol=1e-3)
    np.testing.assert_allclose(default.first_duration, fitted.first_duration, rtol=1e-3)
    np.testing.assert_allclose(default.duration, fitted.duration, rtol=1e-3)
    assert (default.ior_sigma_deg, default.ior_strength) == (
        fitted.ior_sigma_deg,
        fitted.ior_strength,
    )


def test_greedy_fixations_disk_sums_are_fftconvolves() -> None:
    """The cached-spectrum disk sums give fftconvolve's bits, so the fixations are unchanged."""
    from scipy.signal import fftconvolve

    from salience.models.sampler import _disk_sums

    rng = np.random.default_rng(0)
    for shape, radius in (((120, 160), 9.7), ((97, 61), 3.0), ((40, 300), 12.5)):
        density = rng.random(shape) ** 8
        density /= density.sum()
        reach = int(np.ceil(radius))
        offsets = np.arange(-reach, reach + 1)
        disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.float64)
        np.testing.assert_array_equal(
            _disk_sums(density, radius), fftconvolve(density, disk, mode="same")
        )


def _greedy_reference(density: np.ndarray, k: int, radius: float):
    """greedy_fixations as first written: fftconvolve, a full argmax per step."""
    from scipy.signal import fftconvolve

    dens = density / density.sum()
    reach = int(np.ceil(radius))
    offsets = np.arange(-reach, reach + 1)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.float64)
    smoothed = fftconvolve(dens, disk, mode="same")
    smoothed[smoothed < 1e-12] = 0.0
    span, (height, width) = int(np.ceil(2 * radius)), dens.shape
    points, probs = [], []
    for _ in range(k):
        peak = int(np.argmax(smoothed))
        if not smoothed.flat[peak] > 0:
            break
        row, col = divmod(peak, width)
        top, left = max(0, row - span), max(0, col - span)
        bottom, right = min(height, row + span + 1), min(width, col + span + 1)
        d2 = (np.arange(top, bottom)[:, None] - row) ** 2 + (
            np.arange(left, right)[None, :] - col
        ) ** 2
        points.append((col + 0.5, row + 0.5))
        probs.append(float(dens[top:bottom, left:right][d2 <= radius**2].sum()))
        smoothed[top:bottom, left:right][d2 <= (2 * radius) ** 2] = -1.0
    return np.array(points).reshape(-1, 2), np.array(probs)


def test_greedy_fixations_are_the_reference_ones_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    for case in range(12):
        height, width = rng.integers(20, 200, 2)
        density = rng.random((height, width)) ** rng.uniform(1, 30)
        if case % 3 == 0:
            density = np.round(density, 1)  # ties between pixels
        if case % 4 == 0:
            density[:, : width // 2] = 0  # no mass left: fewer points than asked
        radius, k = rng.uniform(1, 15), int(rng.integers(1, 12))
        ours, theirs = greedy_fixations(density, k, radius), _greedy_reference(density, k, radius)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
