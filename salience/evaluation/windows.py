"""Scoring where people look during windows of viewing time (see :mod:`salience.data.windows`).

The **empirical density of a window** is every observer's fixations weighted by their dwell in
it and blurred as :func:`salience.evaluation.evaluate.evaluate` blurs its reference maps
(:func:`salience.evaluation.metrics.empirical_density`, sigma in degrees): the share of the
window's viewing time spent on each pixel.

:func:`evaluate_window` scores a model's density for a window. The fixation metrics (IG against
a center bias, NSS, AUCs, LL) count the fixations whose **onset** falls in the window, each
once: the metric functions have no per-fixation weights. CC, KL and SIM compare with the
dwell-weighted empirical density of the window.
"""

from __future__ import annotations

import numpy as np

from salience.data.dataset import Dataset, Stimulus
from salience.data.windows import Window, dwell_times, fixation_times, window_dataset
from salience.evaluation import metrics
from salience.evaluation.evaluate import EvaluationResult, evaluate
from salience.models.base import DensityModel
from salience.models.baselines import CenterBiasKDE, GoldStandard, fit_references


def empirical_window_density(stimulus: Stimulus, window: Window, sigma_px: float) -> np.ndarray:
    """(H, W) map summing to 1: all observers' fixations weighted by their dwell in ``window``,
    blurred by ``sigma_px``; an error when no fixation dwells in it."""
    xs, ys = stimulus.fixations()
    dwell = dwell_times(*fixation_times(stimulus), [window])[:, 0]  # (n,)
    if not dwell.sum() > 0:
        raise ValueError(f"{stimulus.id}: no fixation dwells in the window {window.label}")
    keep = dwell > 0
    return metrics.empirical_density(
        xs[keep], ys[keep], stimulus.size, sigma_px, weights=dwell[keep]
    )


def fit_window_references(
    train: Dataset, tune: Dataset, evaluated: Dataset, window: Window
) -> tuple[CenterBiasKDE, GoldStandard]:
    """:func:`~salience.models.baselines.fit_references` on each split's fixations with onsets
    in ``window``: the window's center bias (fitted on ``train``) and gold standard (tuned on
    ``tune``, with ``evaluated``'s geometry)."""
    center_bias, gold, _ = fit_references(
        window_dataset(train, window),
        window_dataset(tune, window),
        window_dataset(evaluated, window),
    )
    return center_bias, gold


def evaluate_window(
    model: DensityModel,
    dataset: Dataset,
    window: Window,
    *,
    center_bias: DensityModel,
    sigma_deg: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> EvaluationResult:
    """Score ``model``'s density as the density of ``window`` (probabilistic mode): fixation
    metrics on the fixations whose onset is in the window, CC, KL and SIM against the window's
    dwell-weighted empirical density; IG relative to ``center_bias`` (the window's own).
    Images without such fixations are left out."""
    by_id = {s.id: s for s in dataset}

    def reference(stim: Stimulus) -> np.ndarray:
        return empirical_window_density(by_id[stim.id], window, sigma_deg * dataset.ppd(stim))

    return evaluate(
        model,
        window_dataset(dataset, window),
        center_bias=center_bias,
        sigma_deg=sigma_deg,
        seed=seed,
        name=name,
        references=reference,
    )
