"""Viewing time: windows (0-1 s, 1-2 s, 2-3 s), fixation onsets and the dwell of fixations in them.

A fixation occupies ``[onset, onset + duration)``; its **dwell** in a window ``[start, end)`` is
the overlap of the two, in seconds.

Onsets are the recorded ones where the source has them (NUS Scene). Where it has none (OSIE),
a fixation's onset is the sum of the durations of its scanpath's earlier fixations: as if the
first fixation began at stimulus onset and saccades took no time. That is an approximation
which puts fixations early: on NUS Scene, which records both, such derived onsets precede the
recorded ones by a median of 0.28 s for the first fixation, 0.48 s for the fifth and 0.66 s
for the tenth. OSIE's late windows therefore hold fewer fixations (2-3 s: about 3 per image)
and later viewing than their labels say. Unknown durations (NaN, e.g. mouse tracking) are an
error: such data has no viewing time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from salience.data.dataset import Dataset, Scanpath, Stimulus


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
