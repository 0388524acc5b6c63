"""MIT1003: Judd, Ehinger, Durand and Torralba, "Learning to predict where humans look", ICCV 2009.

The public release (``ALLSTIMULI.zip`` and ``DATA.zip`` from the project page, described in the
README of its database code) is laid out as::

    ALLSTIMULI/<stem>.jpeg        1003 images, longest side 1024 px
    DATA/<observer>/<stem>.mat    one file per observer and image, 15 observers

``DATA/<observer>/`` also holds ``shuff_stimnames.mat`` (viewing order) and
``CalibrationData.mat``, which are not gaze data. Each ``<stem>.mat`` holds one variable named
after the image stem (cut to MATLAB's 63-character limit), a struct whose ``DATA(1).eyeData`` is
the observer's raw gaze: one row per sample of the 240 Hz ISCAN tracker, columns x and y in
1-based image pixels; negative values are blinks.

The release has samples, not fixations. The authors' ``checkFixations.m`` parses them with an
acceleration criterion; :func:`extract_fixations` re-implements that parse with its parameters.
It finds the same saccades on clean traces, but is not promised to be sample-identical to the
MATLAB code on noisy ones. Each trial began with the gaze on a central cross, so the first
fixation is not driven by the image: as in the paper (and pysaliency's ``get_mit1003``) it is
left out unless ``include_initial_fixation`` is set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath, image_size, read_mat

# Judd et al.'s setup: 19" screen at 1280x1024, viewed from about 2 feet (61 cm), images shown
# unscaled. The MIT saliency benchmark (Judd, Durand and Torralba, MIT tech report 2012) puts
# one degree of visual angle at about 35 pixels for it.
MIT1003_PIXELS_PER_DEGREE = 35.0
SAMPLING_RATE_HZ = 240.0

# Parameters of checkFixations.m (its own px/deg constant, used only for the criterion).
_CRITERION = 34.0 * 6.0  # px/s change in 4-sample window speed that marks a saccade
_WINDOW = 4  # samples in the smoothing and speed windows
_DECELERATION_SEARCH = 25  # samples after a rise in which the matching fall must come
_MIN_FIXATION_S = 0.050  # shorter fixations between saccades are absorbed into them

_NOT_GAZE_FILES = {"shuff_stimnames", "calibrationdata"}
_MATLAB_NAME_LENGTH = 63


def _speed_change(xy: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Per sample, how much the windowed gaze speed (px/s) rises one sample later."""
    n = len(xy)
    step = np.zeros(n)
    step[1:] = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
    smooth = np.convolve(step, np.full(_WINDOW, 1.0 / _WINDOW))[:n]  # causal moving average
    change = np.zeros(n)
    k = np.arange(1, max(n - _WINDOW - 1, 1))
    change[k] = (smooth[k + _WINDOW + 1] - smooth[k]) * sampling_rate / _WINDOW
    return change


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _saccades(change: np.ndarray, min_fixation: int) -> list[list[int]]:
    """[first, last] sample of each saccade, after absorbing too-short fixations."""
    n = len(change)
    active = np.flatnonzero(change)
    last_active = int(active[-1]) if len(active) else -1
    found = []
    for first, top in _runs(change > _CRITERION):
        if top == first:  # a lone sample over the criterion is noise
            continue
        end = None
        for j in range(top + 1, min(top + 1 + _DECELERATION_SEARCH, n - 1)):
            if change[j] < -_CRITERION and not change[j + 1] < -_CRITERION:
                end = j
                break
        if end is None:
            if top < last_active:  # a rise with no fall is noise, unless the trial ends in it
                continue
            end = n - 1
        found.append([first, end])
    merged: list[list[int]] = []
    for first, end in sorted(found):
        if merged and first - merged[-1][1] <= min_fixation:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([first, end])
    if merged and (n - 1) - merged[-1][1] <= min_fixation:
        merged[-1][1] = n - 1
    return merged


def _finite_median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else np.nan


def extract_fixations(
    samples: np.ndarray, sampling_rate: float = SAMPLING_RATE_HZ
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse raw gaze samples (n x 2+, columns x, y) into fixations, as ``checkFixations.m`` does.

    A saccade starts where the speed over a 4-sample window rises by more than 204 px/s from one
    sample to the next on at least two samples in a row, and ends on the last sample of the fall
    that follows within 25 samples; a rise with no fall is noise unless the trial ends in it.
    Fixations shorter than 50 ms between two saccades join them, a final one that short is
    discarded, and each fixation lies at the median of its samples (NaN samples ignored).

    Returns x and y (same frame as ``samples``), onset and duration in seconds; the first
    sample is at time 0.
    """
    xy = np.asarray(samples, dtype=np.float64)[:, :2]
    n = len(xy)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    min_fixation = round(_MIN_FIXATION_S * sampling_rate)
    spans = []
    start = 0
    for first, end in _saccades(_speed_change(xy, sampling_rate), min_fixation):
        if first > start:
            spans.append((start, first))
        start = end + 1
    if start < n:
        spans.append((start, n))
    x = np.array([_finite_median(xy[a:b, 0]) for a, b in spans])
    y = np.array([_finite_median(xy[a:b, 1]) for a, b in spans])
    onset = np.array([a for a, _ in spans], dtype=np.float64) / sampling_rate
    duration = np.array([b - a for a, b in spans], dtype=np.float64) / sampling_rate
    return x, y, onset, duration


def _eye_data(mat_path: Path, stem: str) -> np.ndarray:
    """The ``<stem>.DATA(1).eyeData`` samples of one observer's file, as an n x 2 array."""
    mat = read_mat(mat_path, struct_as_record=False)
    variable = stem[:_MATLAB_NAME_LENGTH]
    if variable not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"{mat_path}: no variable {variable!r} (found {found})")
    top = np.asarray(mat[variable])
    data = np.asarray(getattr(top.flat[0], "DATA", [])) if top.size else np.zeros(0)
    if data.size == 0 or not hasattr(data.flat[0], "eyeData"):
        raise DataFormatError(f"{mat_path}: {variable} has no DATA(1).eyeData")
    try:
        eye = np.asarray(data.flat[0].eyeData, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{mat_path}: eyeData is not numeric ({exc})") from exc
    if eye.size == 0:
        return np.zeros((0, 2))
    if eye.ndim != 2 or eye.shape[1] < 2:
        raise DataFormatError(
            f"{mat_path}: eyeData must have one row per sample with x, y columns, "
            f"got shape {eye.shape}"
        )
    return eye[:, :2]


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX")))


def load_mit1003(
    root: str | Path,
    include_initial_fixation: bool = False,
    pixels_per_degree: float = MIT1003_PIXELS_PER_DEGREE,
    name: str = "mit1003",
) -> Dataset:
    """Read MIT1003 from ``root`` (holding ``ALLSTIMULI/`` and ``DATA/``), parsing raw gaze.

    Fixations outside the image (blinks among them) or without a finite sample are dropped and
    counted in ``Dataset.dropped``; the left-out initial fixation is not counted. An observer
    with no file for an image, or no fixation left on it, has no scanpath there. A ``.mat`` in
    an observer folder named after no image is an error (an incomplete ``ALLSTIMULI``).
    ``split.json`` in ``root``, if present, gives the splits.
    """
    root = Path(root)
    image_dir, data_dir = root / "ALLSTIMULI", root / "DATA"
    for folder in (image_dir, data_dir):
        if not folder.is_dir():
            raise DataFormatError(f"{folder}: folder not found")
    images = [p for p in _visible(image_dir) if p.suffix.lower() == ".jpeg"]
    if not images:
        raise DataFormatError(f"{image_dir}: no .jpeg images")
    stems = {p.stem for p in images}
    observers = [p for p in _visible(data_dir) if p.is_dir()]
    for observer in observers:
        for mat_path in _visible(observer):
            if mat_path.suffix != ".mat" or mat_path.stem.lower() in _NOT_GAZE_FILES:
                continue
            if mat_path.stem not in stems:
                raise DataFormatError(
                    f"{mat_path}: gaze file of an image not in {image_dir} "
                    f"(missing image file {mat_path.stem}.jpeg)"
                )
    first = 0 if include_initial_fixation else 1
    entries = []
    for image_path in images:
        size = image_size(image_path)
        scanpaths = []
        for observer in observers:
            mat_path = observer / f"{image_path.stem}.mat"
            if not mat_path.is_file():
                continue
            x, y, onset, duration = extract_fixations(_eye_data(mat_path, image_path.stem))
            if len(x) <= first:
                continue
            scanpaths.append(
                Scanpath(
                    observer.name,
                    x[first:] - 1.0,
                    y[first:] - 1.0,
                    duration[first:],
                    onset[first:],
                )
            )
        entries.append((image_path.stem, image_path, size, scanpaths))
    return Dataset.gather(name, root, entries, pixels_per_degree)
