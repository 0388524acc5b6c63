"""Where people look during windows of viewing time (0-1 s, 1-2 s, 2-3 s): data and scoring.

A fixation occupies ``[onset, onset + duration)``; its **dwell** in a window ``[start, end)`` is
the overlap of the two, in seconds. The **empirical density of a window** is every observer's
fixations weighted by their dwell in it and blurred as :func:`salience.evaluate.evaluate` blurs
its reference maps (:func:`salience.metrics.empirical_density`, sigma in degrees): the share of
the window's viewing time spent on each pixel.

Onsets are the recorded ones where the source has them (NUS Scene). Where it has none (OSIE),
a fixation's onset is the sum of the durations of its scanpath's earlier fixations: as if the
first fixation began at stimulus onset and saccades took no time. That is an approximation
which puts fixations early: on NUS Scene, which records both, such derived onsets precede the
recorded ones by a median of 0.28 s for the first fixation, 0.48 s for the fifth and 0.66 s
for the tenth. OSIE's late windows therefore hold fewer fixations (2-3 s: about 3 per image)
and later viewing than their labels say. Unknown durations (NaN, e.g. mouse tracking) are an
error: such data has no viewing time.

:func:`evaluate_window` scores a model's density for a window. The fixation metrics (IG against
a center bias, NSS, AUCs, LL) count the fixations whose **onset** falls in the window, each
once: the metric functions have no per-fixation weights. CC, KL and SIM compare with the
dwell-weighted empirical density of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from salience import metrics
from salience.data.dataset import Dataset, Scanpath, Stimulus
from salience.evaluate import EvaluationResult, evaluate
from salience.models.base import DensityModel
from salience.models.baselines import CenterBiasKDE, GoldStandard, fit_references


@dataclass(frozen=True)
class Window:
    """A window of viewing time, ``[start, end)`` seconds after the image appeared."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.start) and np.isfinite(self.end) and 0 <= self.start < self.end):
            raise ValueError(
                f"a window needs 0 <= start < end (seconds), got {self.start}-{self.end}"
            )

    @property
    def label(self) -> str:
        """``"0-1s"``: used in file names and tables."""
        return f"{self.start:g}-{self.end:g}s"


DEFAULT_WINDOWS = (Window(0.0, 1.0), Window(1.0, 2.0), Window(2.0, 3.0))


def scanpath_onsets(scanpath: Scanpath) -> np.ndarray:
    """Each fixation's onset in seconds (n,): the recorded one, else the cumulative duration of
    the scanpath's earlier fixations (see the module docstring for what that assumes)."""
    if np.isnan(scanpath.duration).any():
        raise ValueError(
            f"scanpath of observer {scanpath.observer!r}: fixation durations are unknown (NaN, "
            "e.g. mouse tracking), so viewing time cannot be split into windows"
        )
    if scanpath.onset is not None:
        return scanpath.onset
    return np.concatenate([[0.0], np.cumsum(scanpath.duration[:-1])])  # (n,)


def fixation_times(stimulus: Stimulus) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and durations (n,) of a stimulus's fixations, in :meth:`Stimulus.fixations` order."""
    if not stimulus.scanpaths:
        return np.zeros(0), np.zeros(0)
    onsets = np.concatenate([scanpath_onsets(s) for s in stimulus.scanpaths])
    return onsets, np.concatenate([s.duration for s in stimulus.scanpaths])


def dwell_times(onsets: np.ndarray, durations: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
    """Seconds each fixation spends in each window: the overlap of ``[onset, onset + duration)``
    with ``[start, end)``, (n, K)."""
    starts = np.array([w.start for w in windows])  # (K,)
    ends = np.array([w.end for w in windows])  # (K,)
    onsets = np.asarray(onsets, dtype=np.float64)[:, None]  # (n, 1)
    offsets = onsets + np.asarray(durations, dtype=np.float64)[:, None]  # (n, 1)
    return np.clip(np.minimum(offsets, ends) - np.maximum(onsets, starts), 0.0, None)  # (n, K)


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


def window_dataset(dataset: Dataset, window: Window) -> Dataset:
    """``dataset`` with only the fixations whose onset falls in ``window`` (derived onsets are
    stored); scanpaths left empty are dropped, stimuli are kept."""
    stimuli = []
    for stim in dataset:
        scanpaths = []
        for s in stim.scanpaths:
            onsets = scanpath_onsets(s)
            keep = (onsets >= window.start) & (onsets < window.end)
            if keep.any():
                scanpaths.append(
                    Scanpath(s.observer, s.x[keep], s.y[keep], s.duration[keep], onsets[keep])
                )
        stimuli.append(replace(stim, scanpaths=tuple(scanpaths)))
    return replace(dataset, stimuli=stimuli, name=f"{dataset.name}@{window.label}")


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
