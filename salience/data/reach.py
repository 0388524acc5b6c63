"""How far down a tall page viewers look: fixation depth in screens, and a fitted reach curve.

A page taller than the screen is seen one viewport at a time. The **depth** of a fixation is its
y in screen heights from the top of the page, where a screen (viewport) is as tall as the page's
width times ``screen_aspect`` (height / width; 10/16 for a 16:10 display showing the page at
full width). A page of height ``H`` and width ``W`` is ``D = H / (W * screen_aspect)`` screens deep.

The **reach curve** ``r(d)`` is the relative density of fixations at depth ``d``: on a page ``D``
screens deep a fixation falls at depth ``d`` with probability density ``r(d) / M(D)``, where
``M(D)`` is the integral of ``r`` over ``[0, D)``. Normalizing per page keeps page length out of
the fit: a one-screen page has no second screen to look at, which says nothing about how much a
second screen is looked at where there is one. Two families, fitted by maximum likelihood
(:func:`fit_reach`):

``exponential``
    ``r(d) = exp(-d / scale)``: attention thins out at a constant rate per screen scrolled.
``fold``
    ``r(d) = boost * exp(-d / scale)`` in the first screen (``d < 1``), ``exp(-d / scale)``
    below it: the same thinning, plus a step at the fold for what is seen without scrolling.

(A logistic plateau, ``1 / (1 + exp((d - midpoint) / width))``, was tried on EYEVIDO train and
degenerates to the exponential: the midpoint runs off above the page, so there is no plateau.)

Weights are one per fixation (``"fixations"``) or the fixation's duration (``"time"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from salience.data.dataset import Dataset

SCREEN_ASPECT = 10 / 16
REACH_KINDS = ("exponential", "fold")
WEIGHTS = ("fixations", "time")


@dataclass(frozen=True)
class Depths:
    """Every fixation's depth in screens, its page's depth, its weight and its page's index."""

    depth: np.ndarray  # (n,) fixation y / screen height
    page_depth: np.ndarray  # (n,) page height / screen height, per fixation
    weight: np.ndarray  # (n,) 1 or duration in seconds
    page: np.ndarray  # (n,) stimulus index in the dataset

    def __len__(self) -> int:
        return len(self.depth)


def fixation_depths(
    dataset: Dataset, screen_aspect: float = SCREEN_ASPECT, weight: str = "fixations"
) -> Depths:
    """Depth in screens of every fixation of ``dataset`` (module docstring for the definitions)."""
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    if not screen_aspect > 0:
        raise ValueError(f"screen_aspect must be positive, got {screen_aspect}")
    depth, page_depth, w, page = [], [], [], []
    for i, stim in enumerate(dataset.stimuli):
        screen = stim.width * screen_aspect
        for sp in stim.scanpaths:
            depth.append(sp.y / screen)
            page_depth.append(np.full(len(sp), stim.height / screen))
            w.append(np.ones(len(sp)) if weight == "fixations" else sp.duration)
            page.append(np.full(len(sp), i))
    if not depth:
        raise ValueError(f"{dataset.name}: no fixations")
    result = Depths(*(np.concatenate(a) for a in (depth, page_depth, w, page)))
    if not np.isfinite(result.weight).all():
        raise ValueError(f"{dataset.name}: unknown durations, use weight='fixations'")
    return result


@dataclass(frozen=True)
class ReachCurve:
    """A fitted reach curve ``r(d)``, depth ``d`` in screens of ``screen_aspect`` (module doc)."""

    kind: str
    params: dict[str, float]
    screen_aspect: float
    log_likelihood: float  # mean weighted log-likelihood per fixation, log screens^-1
    flat_log_likelihood: float  # the same for r = const (fixations uniform over each page)
    n_fixations: int

    def __call__(self, depth: np.ndarray | float) -> np.ndarray:
        """Relative fixation density at ``depth`` screens (1 just below the fold)."""
        return np.exp(_log_r(self.kind, self._theta(), np.asarray(depth, dtype=float)))

    def mass(self, depth: np.ndarray | float) -> np.ndarray:
        """``M(depth)``: the integral of ``r`` from the top of the page to ``depth`` screens."""
        return _mass(self.kind, self._theta(), np.asarray(depth, dtype=float))

    def window_share(
        self, top: np.ndarray | float, bottom: np.ndarray | float, page_depth: float
    ) -> np.ndarray:
        """Expected share of a page's fixations between depths ``top`` and ``bottom`` (screens)
        on a page ``page_depth`` screens deep."""
        top = np.clip(top, 0.0, page_depth)
        bottom = np.clip(bottom, 0.0, page_depth)
        return (self.mass(bottom) - self.mass(top)) / self.mass(page_depth)

    def _theta(self) -> np.ndarray:
        theta = [np.log(self.params["scale"])]
        if self.kind == "fold":
            theta.append(np.log(self.params["boost"]))
        return np.array(theta)


def _exp_mass(scale: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integral of exp(-u / scale) over [a, b)."""
    return scale * np.exp(-a / scale) * -np.expm1(-(b - a) / scale)


def _mass(kind: str, theta: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Integral of r over [0, depth) for the curve ``kind`` with log-parameters ``theta``."""
    scale = np.exp(theta[0])
    if kind == "exponential":
        return _exp_mass(scale, np.zeros_like(depth), depth)
    fold = np.minimum(depth, 1.0)
    return np.exp(theta[1]) * _exp_mass(scale, np.zeros_like(depth), fold) + _exp_mass(
        scale, fold, depth
    )


def _log_r(kind: str, theta: np.ndarray, depth: np.ndarray) -> np.ndarray:
    log_r = -depth / np.exp(theta[0])
    if kind == "fold":
        log_r = log_r + np.where(depth < 1.0, theta[1], 0.0)
    return log_r


def fit_reach(
    dataset: Dataset,
    kind: str = "exponential",
    screen_aspect: float = SCREEN_ASPECT,
    weight: str = "fixations",
) -> ReachCurve:
    """Fit a reach curve to ``dataset``'s fixations by weighted maximum likelihood.

    Pass the training split only; the curve is then fit to score other splits.
    """
    if kind not in REACH_KINDS:
        raise ValueError(f"kind must be one of {REACH_KINDS}, got {kind!r}")
    d = fixation_depths(dataset, screen_aspect, weight)
    w = d.weight / d.weight.sum()

    def loss(theta: np.ndarray) -> float:
        ll = _log_r(kind, theta, d.depth) - np.log(_mass(kind, theta, d.page_depth))
        return -float(np.sum(w * ll))

    start = np.zeros(1 if kind == "exponential" else 2)
    result = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10})
    if not result.success:
        raise RuntimeError(f"reach fit did not converge: {result.message}")
    theta = result.x
    params = {"scale": float(np.exp(theta[0]))}
    if kind == "fold":
        params["boost"] = float(np.exp(theta[1]))
    return ReachCurve(
        kind,
        params,
        screen_aspect,
        log_likelihood=-float(result.fun),
        flat_log_likelihood=-float(np.sum(w * np.log(d.page_depth))),
        n_fixations=len(d),
    )


def reach_log_likelihood(
    dataset: Dataset, curve: ReachCurve, weight: str = "fixations"
) -> tuple[float, float]:
    """Mean weighted log-likelihood per fixation of ``dataset``'s depths under ``curve``, and
    under the flat curve (fixations uniform over each page's depth), in log screens^-1."""
    d = fixation_depths(dataset, curve.screen_aspect, weight)
    w = d.weight / d.weight.sum()
    theta = curve._theta()
    ll = _log_r(curve.kind, theta, d.depth) - np.log(_mass(curve.kind, theta, d.page_depth))
    return float(np.sum(w * ll)), -float(np.sum(w * np.log(d.page_depth)))


def screen_table(
    dataset: Dataset, curve: ReachCurve, n_screens: int = 5, weight: str = "fixations"
) -> list[dict[str, float]]:
    """Share of fixations (or time) in screen 1, 2, ... observed and expected under ``curve``.

    The last row pools screen ``n_screens`` and everything below it. ``pages`` counts the pages
    reaching into each screen. Expected shares sum each page's :meth:`ReachCurve.window_share`,
    weighted by that page's observed total, so page lengths match the observed ones.
    """
    d = fixation_depths(dataset, curve.screen_aspect, weight)
    edges = np.arange(n_screens + 1, dtype=float)
    edges[-1] = np.inf
    observed = np.histogram(d.depth, bins=edges, weights=d.weight)[0] / d.weight.sum()
    expected = np.zeros(n_screens)
    pages_in = np.zeros(n_screens, dtype=int)
    for i in np.unique(d.page):
        sel = d.page == i
        depth = float(d.page_depth[sel][0])
        expected += d.weight[sel].sum() * curve.window_share(edges[:-1], edges[1:], depth)
        pages_in += edges[:-1] < depth
    expected /= d.weight.sum()
    return [
        {
            "screen": k + 1,
            "pages": int(pages_in[k]),
            "observed": float(observed[k]),
            "expected": float(expected[k]),
        }
        for k in range(n_screens)
    ]


def viewer_reach(
    dataset: Dataset, screen_aspect: float = SCREEN_ASPECT, depths: Sequence[float] = (1, 2, 3)
) -> list[dict[str, float]]:
    """For each depth ``k`` (screens): of the viewings on pages deeper than ``k``, the share with
    a fixation at depth ``k`` or below, i.e. how often a viewer who could scroll there did."""
    rows = []
    for k in depths:
        eligible = reached = 0
        for stim in dataset.stimuli:
            screen = stim.width * screen_aspect
            if stim.height <= k * screen:
                continue
            for sp in stim.scanpaths:
                eligible += 1
                reached += bool(np.any(sp.y >= k * screen))
        rows.append(
            {
                "depth": float(k),
                "viewings": eligible,
                "reached": reached / eligible if eligible else float("nan"),
            }
        )
    return rows


def center_bias(dataset: Dataset, screen_aspect: float = SCREEN_ASPECT) -> dict[str, float]:
    """Mean fixation position: x / width, y / screen height (depth), y / page height, and the
    same x and depth for the fixations in the first screen only."""
    xs, depth, rel = [], [], []
    for stim in dataset.stimuli:
        x, y = stim.fixations()
        xs.append(x / stim.width)
        depth.append(y / (stim.width * screen_aspect))
        rel.append(y / stim.height)
    x, d, r = (np.concatenate(a) for a in (xs, depth, rel))
    first = d < 1
    return {
        "x_over_width": float(x.mean()),
        "y_over_screen": float(d.mean()),
        "y_over_height": float(r.mean()),
        "first_screen_share": float(first.mean()),
        "first_screen_x_over_width": float(x[first].mean()),
        "first_screen_y_over_screen": float(d[first].mean()),
    }
