"""Reach curves: the maths on known curves, recovery of known parameters, and EYEVIDO train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from salience.data.dataset import Dataset, Scanpath, Stimulus
from salience.data.reach import (
    REACH_KINDS,
    ReachCurve,
    center_bias,
    fit_reach,
    reach_log_likelihood,
    screen_table,
    viewer_reach,
)

WIDTH = 160  # a screen is 100 px tall at 10:16


def _stimulus(i: int, height: int, ys: list[list[float]], x: float = 80.0) -> Stimulus:
    scanpaths = tuple(
        Scanpath(str(k), np.full(len(y), x), np.asarray(y, float), np.full(len(y), 0.2))
        for k, y in enumerate(ys)
    )
    return Stimulus(f"p{i}", Path(f"p{i}.jpg"), (height, WIDTH), scanpaths)


def _dataset(stimuli: list[Stimulus]) -> Dataset:
    return Dataset("synthetic", Path("."), stimuli, pixels_per_degree=20.0)


def _sample(kind: str, params: dict[str, float], seed: int = 0) -> Dataset:
    """Pages 1 to 6 screens deep, fixation depths drawn from the curve by inverting its mass."""
    curve = ReachCurve(kind, params, 10 / 16, 0.0, 0.0, 0)
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 6, 6001)
    stimuli = []
    for i in range(300):
        depth = rng.uniform(1, 6)
        cdf = curve.mass(np.minimum(grid, depth)) / curve.mass(depth)
        d = np.interp(rng.uniform(size=60), cdf, np.minimum(grid, depth))
        stimuli.append(_stimulus(i, int(depth * 100), [list(np.minimum(d * 100, depth * 100 - 1))]))
    return _dataset(stimuli)


@pytest.mark.parametrize(
    "kind, params", [("exponential", {"scale": 1.5}), ("fold", {"scale": 3.0, "boost": 2.0})]
)
def test_mass_integrates_the_curve(kind, params) -> None:
    curve = ReachCurve(kind, params, 10 / 16, 0.0, 0.0, 0)
    for depth in (0.4, 1.0, 2.7):
        expected = quad(lambda d: float(curve(d)), 0, depth, points=[1.0] if depth > 1 else None)
        assert curve.mass(depth) == pytest.approx(expected[0], rel=1e-6)
    assert curve.window_share(0.0, 5.0, 2.7) == pytest.approx(1.0)
    assert curve.window_share(0.5, 1.5, 2.7) == pytest.approx(
        (curve.mass(1.5) - curve.mass(0.5)) / curve.mass(2.7)
    )


@pytest.mark.parametrize(
    "kind, params", [("exponential", {"scale": 1.5}), ("fold", {"scale": 3.0, "boost": 2.0})]
)
def test_fit_recovers_known_parameters(kind, params) -> None:
    fitted = fit_reach(_sample(kind, params), kind)
    for name, value in params.items():
        assert fitted.params[name] == pytest.approx(value, rel=0.15), (name, fitted.params)
    assert fitted.log_likelihood > fitted.flat_log_likelihood


def test_flat_data_gives_no_gain() -> None:
    data = _sample("exponential", {"scale": 1e6})
    fitted = fit_reach(data, "exponential")
    assert fitted.params["scale"] > 20
    assert fitted.log_likelihood - fitted.flat_log_likelihood < 0.01


def test_viewer_reach_and_center_bias_by_hand() -> None:
    data = _dataset(
        [
            _stimulus(0, 350, [[10, 150], [20], [250, 30]]),  # 3.5 screens, 3 viewers
            _stimulus(1, 100, [[50]], x=40.0),  # one screen, cannot reach depth 1
        ]
    )
    rows = viewer_reach(data, depths=(1, 2, 3))
    assert [(r["viewings"], r["reached"]) for r in rows] == [(3, 2 / 3), (3, 1 / 3), (3, 0.0)]
    cb = center_bias(data)
    assert cb["x_over_width"] == pytest.approx((5 * 0.5 + 0.25) / 6)
    assert cb["y_over_screen"] == pytest.approx((10 + 150 + 20 + 250 + 30 + 50) / 100 / 6)
    assert cb["first_screen_share"] == pytest.approx(4 / 6)
    assert cb["first_screen_y_over_screen"] == pytest.approx((10 + 20 + 30 + 50) / 100 / 4)


def test_eyevido_train(eyevido) -> None:
    """On the real train split attention thins out with depth; fitted shares sum to one and the
    fold curve (which nests the exponential) fits at least as well."""
    train, val = eyevido.split("train"), eyevido.split("val")
    curves = {kind: fit_reach(train, kind) for kind in REACH_KINDS}
    exp, fold = curves["exponential"], curves["fold"]
    assert 0.5 < exp.params["scale"] < 20
    assert fold.log_likelihood >= exp.log_likelihood - 1e-9
    for curve in curves.values():
        assert curve.log_likelihood > curve.flat_log_likelihood
        val_ll, val_flat = reach_log_likelihood(val, curve)
        assert val_ll > val_flat
        table = screen_table(train, curve, 4)
        assert sum(r["observed"] for r in table) == pytest.approx(1.0)
        assert sum(r["expected"] for r in table) == pytest.approx(1.0)
        assert table[0]["pages"] == len(train)
        assert table[0]["observed"] > table[1]["observed"] > table[2]["observed"]
