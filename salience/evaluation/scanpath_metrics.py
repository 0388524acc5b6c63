"""Scanpath similarity: MultiMatch, ScanMatch and SequenceScore, and averages against humans.

Every metric compares TWO scanpaths on one image and returns a similarity (1 = identical);
:func:`human_baseline` and :func:`score_against_humans` average a metric over the observers of a
:class:`~salience.data.dataset.Stimulus`, the shape of evaluation scanpath benchmarks use.

Shared conventions
------------------
* A scanpath is a :class:`~salience.data.dataset.Scanpath` or an array of shape ``(n, 3)``
  holding x, y (0-based float pixels) and duration (seconds), or ``(n, 2)`` when durations are
  unknown. NaN durations mean "unknown" (mouse tracking); only the parts of a metric that use
  durations are affected (MultiMatch's duration similarity becomes NaN, ScanMatch's temporal
  binning refuses them).
* Errors raise :class:`ValueError`: a malformed array, NaN or infinite coordinates, negative or
  infinite durations, and fixations outside ``[0, width) x [0, height)``. Out-of-bounds points
  are rejected, never clipped, as in :mod:`salience.evaluation.metrics`: a point outside the image
  usually means swapped (height, width) or a coordinate-convention bug, which clipping would hide.
* A scanpath too short for a metric gives NaN, not an error, so that averages over real data
  (OSIE has one-fixation scanpaths) can skip it: MultiMatch needs at least 3 fixations (2
  saccades) in both scanpaths, as multimatch-gaze does; ScanMatch and SequenceScore need at least
  one fixation (after temporal binning, for ScanMatch) in both, and ScanMatch without a given
  threshold needs two saccades of different amplitudes between the two to estimate one.
  :func:`human_baseline` and :func:`score_against_humans` average the non-NaN scores.

References
----------
[J10]  Jarodzka, Holmqvist, Nyström, "A vector-based, multidimensional scanpath similarity
       measure", ETRA 2010.
[D12]  Dewhurst, Nyström, Jarodzka, Foulsham, Johansson, Holmqvist, "It depends on how you look
       at it: Scanpath comparison in multiple dimensions with MultiMatch, a vector-based
       approach", Behavior Research Methods 44(4), 2012.
[MMG]  Wagner, Sengupta, Hanke, "multimatch-gaze" 0.1.3 (PyPI), the Python port of the MultiMatch
       MATLAB toolbox; ``tests/test_scanpath_metrics.py`` compares against it.
[C10]  Cristino, Mathôt, Theeuwes, Gilchrist, "ScanMatch: A novel method for comparing fixation
       sequences", Behavior Research Methods 42(3), 2010, and its MATLAB toolbox
       (``ScanMatch_CreateSubMatrix.m``, ``ScanMatch_FixationToSequence.m``, ``ScanMatch.m``).
[Y20]  Yang, Huang, Chen, Wei, Ahn, Zelinsky, Samaras, Hoai, "Predicting goal-directed human
       attention using inverse reinforcement learning", CVPR 2020 (Sequence Score).
[C21]  Chen, Jiang, Zhao, "Predicting human scanpaths in visual question answering", CVPR 2021
       (Sequence Score as used for OSIE and other free-viewing benchmarks).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from salience.data.dataset import Scanpath, Stimulus

ScanpathLike = Scanpath | npt.ArrayLike
Metric = str | Callable[..., float | dict[str, float]]

#: The five MultiMatch dimensions, in the order of [D12] and multimatch-gaze.
MULTIMATCH_DIMENSIONS = ("vector", "direction", "length", "position", "duration")
#: Default spatial grid (rows, columns) of ScanMatch and grid-based SequenceScore: the ScanMatch
#: toolbox's default of 12 bins across and 8 down [C10].
DEFAULT_GRID = (8, 12)


# --------------------------------------------------------------------------- input validation


def _fixations(scanpath: ScanpathLike, name: str) -> np.ndarray:
    """``(n, 3)`` float64 array of x, y, duration (NaN if unknown), validated."""
    if isinstance(scanpath, Scanpath):
        arr = np.column_stack([scanpath.x, scanpath.y, scanpath.duration]).astype(np.float64)
    else:
        arr = np.asarray(scanpath, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 3))
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ValueError(
                f"{name}: a scanpath array must have shape (n, 3) of x, y, duration "
                f"or (n, 2) of x, y; got {arr.shape}"
            )
        if arr.shape[1] == 2:
            arr = np.column_stack([arr, np.full(len(arr), np.nan)])
    if not np.isfinite(arr[:, :2]).all():
        raise ValueError(f"{name}: fixation coordinates contain NaN or infinite values")
    duration = arr[:, 2]
    if np.isinf(duration).any() or (duration < 0).any():
        raise ValueError(f"{name}: durations must be finite and >= 0 seconds (NaN = unknown)")
    return arr


def _check_inside(fix: np.ndarray, width: float, height: float, name: str) -> None:
    x, y = fix[:, 0], fix[:, 1]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        raise ValueError(
            f"{name}: {int(outside.sum())} fixations lie outside the {width}x{height} "
            f"(width x height) area: 0-based pixels need x in [0, {width}), y in [0, {height})"
        )


def _check_size(size: tuple[float, float], what: str) -> tuple[float, float]:
    if len(size) != 2 or not all(math.isfinite(s) and s > 0 for s in size):
        raise ValueError(f"{what} must be two positive numbers, got {size!r}")
    return float(size[0]), float(size[1])


def _check_grid(grid: tuple[int, int]) -> tuple[int, int]:
    if len(grid) != 2 or not all(isinstance(g, (int, np.integer)) and g >= 1 for g in grid):
        raise ValueError(f"grid must be (rows, columns) of positive integers, got {grid!r}")
    return int(grid[0]), int(grid[1])


# --------------------------------------------------------------------------- MultiMatch
#
# A scanpath becomes a sequence of saccade vectors between consecutive fixations [J10]. During
# simplification it is kept as lists: ``sac`` rows of [start x, start y, dx, dy] and ``dur``,
# the fixation durations, where dur[k] is the fixation a saccade k starts from. Simplification
# follows multimatch-gaze (and the MATLAB toolbox it ports) step for step, quirks included, so
# that results agree to rounding: see _merge_short().


def _angle_deg(u: list[float], v: list[float]) -> float:
    """Angle between two saccade vectors in degrees; NaN if either has length 0."""
    norms = math.hypot(u[2], u[3]) * math.hypot(v[2], v[3])
    if norms == 0.0:
        return math.nan
    cosine = (u[2] * v[2] + u[3] * v[3]) / norms
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def _joined(u: list[float], v: list[float]) -> list[float]:
    """One saccade from u's start covering u and v."""
    return [u[0], u[1], u[2] + v[2], u[3] + v[3]]


def _merge_by_direction(
    sac: list[list[float]], dur: list[float], max_angle: float, max_duration: float
) -> tuple[list[list[float]], list[float]]:
    """One left-to-right pass joining saccade pairs that turn by less than ``max_angle`` degrees
    at a fixation shorter than ``max_duration``; a joined pair keeps its first fixation."""
    out, out_dur = [], []
    i, n = 0, len(sac)
    while i < n:
        if i + 1 < n and _angle_deg(sac[i], sac[i + 1]) < max_angle and dur[i + 1] < max_duration:
            out.append(_joined(sac[i], sac[i + 1]))
            step = 2
        else:
            out.append(sac[i])
            step = 1
        out_dur.append(dur[i])
        i += step
    out_dur.append(dur[-1])
    return out, out_dur


def _merge_short(
    sac: list[list[float]], dur: list[float], min_length: float, max_duration: float
) -> tuple[list[list[float]], list[float]]:
    """One left-to-right pass joining a saccade shorter than ``min_length`` with the next one
    when either fixation around it is shorter than ``max_duration``.

    The last saccade has no successor; like multimatch-gaze, it is then joined to its input
    predecessor by overwriting the vector of the last saccade already emitted (whose start is
    kept), and the fixation list grows by one extra entry. A lone saccade stays as it is
    (multimatch-gaze raises IndexError there).
    """
    out, out_dur = [], []
    i, n = 0, len(sac)
    while i < n:
        short = math.hypot(sac[i][2], sac[i][3]) < min_length
        if i < n - 1:
            if short and (dur[i + 1] < max_duration or dur[i] < max_duration):
                out.append(_joined(sac[i], sac[i + 1]))
                out_dur.append(dur[i])
                i += 2
                continue
        elif short and out and (dur[-1] < max_duration or dur[-2] < max_duration):
            start = out[-1]
            out[-1] = [start[0], start[1], sac[i - 1][2] + sac[i][2], sac[i - 1][3] + sac[i][3]]
            out_dur.append(dur[i - 1])
            i += 1
            continue
        out.append(sac[i])
        out_dur.append(dur[i])
        i += 1
    out_dur.append(dur[-1])
    return out, out_dur


def _simplify(
    sac: list[list[float]],
    dur: list[float],
    amplitude: float,
    direction: float,
    duration: float,
) -> tuple[list[list[float]], list[float]]:
    """Alternate direction and amplitude passes until the number of fixations stops changing
    (the stopping rule of [D12]'s toolbox and multimatch-gaze)."""
    count = len(dur)
    while True:
        sac, dur = _merge_by_direction(sac, dur, direction, duration)
        sac, dur = _merge_short(sac, dur, amplitude, duration)
        if len(dur) == count:
            return sac, dur
        count = len(dur)


@functools.lru_cache(maxsize=256)
def _grid_graph(n1: int, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``indices`` and ``indptr`` of the alignment graph over an n1 x n2 grid of nodes.

    Node ``i * n2 + j`` steps right, down and diagonally (only right in the last row, only down
    in the last column); the end node has a self-loop, as in multimatch-gaze's graph, so that
    Dijkstra sees the same graph and resolves ties between equally cheap paths the same way.
    """
    node = np.arange(n1 * n2).reshape(n1, n2)
    last = n1 * n2 - 1
    right, down, diagonal = node[:, :-1].ravel(), node[:-1, :].ravel(), node[:-1, :-1].ravel()
    src = np.concatenate([right, down, diagonal, [last]])
    dst = np.concatenate([right + 1, down + n2, diagonal + n2 + 1, [last]])
    order = np.lexsort((dst, src))
    indptr = np.searchsorted(src[order], np.arange(n1 * n2 + 1))
    return dst[order], indptr


def _align(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saccade pairs (i, j) on the cheapest monotone path from (0, 0) to (n1-1, n2-1).

    Nodes are the cells of ``cost``; each step (right, down or diagonal) pays the cost of the
    cell it enters [J10]. Solved with Dijkstra on the graph of :func:`_grid_graph`.
    """
    n1, n2 = cost.shape
    last = n1 * n2 - 1
    indices, indptr = _grid_graph(n1, n2)
    weight = cost.ravel()[indices]
    weight[-1] = 0.0  # the end node's self-loop, its only (and last) edge
    graph = csr_matrix((weight, indices, indptr), shape=(n1 * n2, n1 * n2))
    _, predecessors = dijkstra(graph, directed=True, indices=0, return_predecessors=True)
    path = [last]
    while path[-1] != 0:
        path.append(int(predecessors[path[-1]]))
    nodes = np.array(path[::-1])
    return nodes // n2, nodes % n2


def multimatch(
    a: ScanpathLike,
    b: ScanpathLike,
    screen_size: tuple[float, float],
    *,
    simplify: bool = True,
    amplitude_threshold: float | None = None,
    direction_threshold: float = 45.0,
    duration_threshold: float = 0.3,
) -> dict[str, float]:
    """MultiMatch similarity of two scanpaths on five dimensions, each in [0, 1] [J10, D12].

    Saccade vectors of the two scanpaths are aligned by the cheapest path through the matrix of
    their vector differences; along it, the medians of vector difference, angle difference,
    length difference, start-position distance and relative fixation-duration difference are
    normalized by twice the screen diagonal, pi, the diagonal, the diagonal and 1, and
    subtracted from 1, exactly as multimatch-gaze does [MMG].

    ``screen_size`` is (width, height) in pixels (the image size when the image filled the
    screen). With ``simplify``, consecutive saccades are joined when the angle between them is
    below ``direction_threshold`` degrees, or when one is shorter than ``amplitude_threshold``
    pixels (default: 10 % of the screen diagonal), provided the fixation(s) between are shorter
    than ``duration_threshold`` seconds; these defaults are the MATLAB toolbox's, which
    multimatch-gaze validates against. multimatch-gaze's ``TAmp``, ``TDir``, ``TDur`` are these
    thresholds in the same units (pixels, degrees, seconds).

    Returns NaN on every dimension when either scanpath has fewer than 3 fixations; the duration
    similarity is NaN when a compared duration is unknown or both are 0.
    """
    width, height = _check_size(screen_size, "screen_size (width, height)")
    fa, fb = _fixations(a, "scanpath a"), _fixations(b, "scanpath b")
    _check_inside(fa, width, height, "scanpath a")
    _check_inside(fb, width, height, "scanpath b")
    if len(fa) < 3 or len(fb) < 3:
        return dict.fromkeys(MULTIMATCH_DIMENSIONS, math.nan)
    diagonal = math.hypot(width, height)
    if amplitude_threshold is None:
        amplitude_threshold = 0.1 * diagonal

    paths = []
    for fix in (fa, fb):
        steps = np.diff(fix[:, :2], axis=0)
        sac = np.column_stack([fix[:-1, :2], steps]).tolist()
        dur = fix[:, 2].tolist()
        if simplify:
            sac, dur = _simplify(
                sac, dur, amplitude_threshold, direction_threshold, duration_threshold
            )
        paths.append((np.asarray(sac, dtype=np.float64), np.asarray(dur, dtype=np.float64)))
    (s1, d1), (s2, d2) = paths

    # Difference vectors between every saccade of a and every saccade of b.
    vector_diff = np.sqrt(
        (s1[:, None, 2] - s2[None, :, 2]) ** 2 + (s1[:, None, 3] - s2[None, :, 3]) ** 2
    )
    i, j = _align(vector_diff)

    theta1 = np.arctan2(s1[i, 3], s1[i, 2])
    theta2 = np.arctan2(s2[j, 3], s2[j, 2])
    theta1 = np.where(theta1 < 0, theta1 + 2 * math.pi, theta1)
    theta2 = np.where(theta2 < 0, theta2 + 2 * math.pi, theta2)
    turn = np.abs(theta1 - theta2)
    turn = np.where(turn > math.pi, 2 * math.pi - turn, turn)

    length1 = np.sqrt(s1[i, 2] ** 2 + s1[i, 3] ** 2)
    length2 = np.sqrt(s2[j, 2] ** 2 + s2[j, 3] ** 2)
    position = np.sqrt((s1[i, 0] - s2[j, 0]) ** 2 + (s1[i, 1] - s2[j, 1]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        duration = np.abs(d1[i] - d2[j]) / np.maximum(d1[i], d2[j])

    differences = np.stack([vector_diff[i, j], turn, np.abs(length1 - length2), position, duration])
    scale = np.array([2.0 * diagonal, math.pi, diagonal, diagonal, 1.0])
    similarity = 1.0 - np.median(differences, axis=1) / scale
    return dict(zip(MULTIMATCH_DIMENSIONS, similarity.tolist(), strict=True))


# --------------------------------------------------------------------------- string alignment


def _needleman_wunsch(score: np.ndarray, gap: float) -> float:
    """Best global alignment score [Needleman & Wunsch 1970] with a linear gap value.

    ``score[i, j]`` rewards aligning element i of the first sequence with element j of the
    second; each gap adds ``gap`` (0 or negative). Row by row: the diagonal and vertical moves
    are elementwise, the horizontal chain within a row is a running maximum, since
    ``F[i, j] = max_k (best[k] + (j - k) gap)``.
    """
    n1, n2 = score.shape
    steps = gap * np.arange(n2 + 1)
    row = steps.copy()
    for i in range(n1):
        best = np.empty(n2 + 1)
        best[0] = gap * (i + 1)
        best[1:] = np.maximum(row[:-1] + score[i], row[1:] + gap)
        row = np.maximum.accumulate(best - steps) + steps
    return float(row[-1])


def _grid_cells(fix: np.ndarray, size: tuple[float, float], grid: tuple[int, int]) -> np.ndarray:
    """(row, column) of each fixation's grid cell, ``(n, 2)`` int."""
    height, width = size
    rows, cols = grid
    r = np.minimum(np.floor(fix[:, 1] * rows / height), rows - 1)
    c = np.minimum(np.floor(fix[:, 0] * cols / width), cols - 1)
    return np.column_stack([r, c]).astype(np.intp)


# --------------------------------------------------------------------------- ScanMatch


def _threshold(fixations: Sequence[np.ndarray], width: float, columns: int) -> float:
    """``2 * std(saccade amplitudes) / (width / columns)``; NaN from fewer than 2 saccades."""
    amplitudes = np.concatenate(
        [np.hypot(*np.diff(f[:, :2], axis=0).T) for f in fixations if len(f) >= 2] or [np.zeros(0)]
    )
    if len(amplitudes) < 2:
        return math.nan
    return 2.0 * float(np.std(amplitudes, ddof=1)) / (width / columns)


def scanmatch_threshold(
    scanpaths: Sequence[ScanpathLike],
    image_size: tuple[int, int],
    grid: tuple[int, int] = DEFAULT_GRID,
) -> float:
    """ScanMatch's substitution threshold from the spread of saccade amplitudes [C10].

    ``2 * std(saccade amplitudes in pixels) / (width / columns)``, the rule documented in the
    toolbox's ``ScanMatch_CreateSubMatrix.m``: cells closer than this (in cell widths) count as
    similar. Pass the scanpaths of a whole image or data set so that every pair compared on it
    shares one substitution matrix. Raises ValueError with fewer than two saccades in total or
    when all amplitudes are equal.
    """
    _, width = _check_size(image_size, "image_size (height, width)")
    _, cols = _check_grid(grid)
    threshold = _threshold([_fixations(s, "scanpath") for s in scanpaths], width, cols)
    if not threshold > 0:
        raise ValueError(
            "the ScanMatch threshold needs at least 2 saccades of different amplitudes"
        )
    return threshold


def _scanmatch_sequence(
    fix: np.ndarray,
    size: tuple[float, float],
    grid: tuple[int, int],
    temporal_bin: float | None,
    name: str,
) -> np.ndarray:
    """Grid cells of the fixations, each repeated once per ``temporal_bin`` seconds it lasted."""
    cells = _grid_cells(fix, size, grid)
    if not temporal_bin:
        return cells
    if np.isnan(fix[:, 2]).any():
        raise ValueError(
            f"{name}: fixation durations are unknown (NaN); "
            "pass temporal_bin=None to compare without temporal binning"
        )
    # MATLAB's round (half away from zero): fixations shorter than half a bin drop out [C10].
    repeats = np.floor(fix[:, 2] / temporal_bin + 0.5).astype(np.intp)
    return np.repeat(cells, repeats, axis=0)


def scanmatch(
    a: ScanpathLike,
    b: ScanpathLike,
    image_size: tuple[int, int],
    *,
    grid: tuple[int, int] = DEFAULT_GRID,
    temporal_bin: float | None = 0.05,
    gap: float = 0.0,
    threshold: float | None = None,
) -> float:
    """ScanMatch similarity of two scanpaths [C10]; in [0, 1] when ``gap`` is 0 (the default).

    Fixations become cells of a ``grid`` of (rows, columns) over the image of ``image_size``
    (height, width); with ``temporal_bin`` (seconds; None or 0 to disable) each cell repeats
    once per bin of its fixation's duration, rounded. Two sequences are aligned by
    Needleman-Wunsch with the toolbox's substitution matrix ``threshold - d``, where d is the
    Euclidean distance between two cells in cell units, and linear ``gap`` value; the score is
    divided by ``threshold * max(len)``, the score of a perfect match.

    ``threshold`` defaults to :func:`scanmatch_threshold` of the two scanpaths; for comparisons
    across many pairs, pass one computed from all scanpaths of the image (as
    :func:`human_baseline` does). Two deliberate differences from the toolbox, which works on
    integer pixels and milliseconds: cells come from 0-based float pixels
    (``floor(x * columns / width)``), and with temporal binning the first fixation is kept (the
    toolbox's temporal branch skips it, unlike its untimed branch).

    NaN when a sequence is empty, or when the default threshold cannot be estimated (fewer than
    two saccades between the two scanpaths, or all of equal amplitude).
    """
    size = _check_size(image_size, "image_size (height, width)")
    grid = _check_grid(grid)
    if gap > 0:
        raise ValueError(f"gap is added per gap and must be <= 0, got {gap}")
    if temporal_bin is not None and temporal_bin < 0:
        raise ValueError(f"temporal_bin must be positive seconds (or None), got {temporal_bin}")
    fa, fb = _fixations(a, "scanpath a"), _fixations(b, "scanpath b")
    for fix, name in ((fa, "scanpath a"), (fb, "scanpath b")):
        _check_inside(fix, size[1], size[0], name)
    if threshold is None:
        threshold = _threshold([fa, fb], size[1], grid[1])
        if not threshold > 0:  # NaN or 0: no spread of amplitudes to set it from
            return math.nan
    elif not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    sa = _scanmatch_sequence(fa, size, grid, temporal_bin, "scanpath a")
    sb = _scanmatch_sequence(fb, size, grid, temporal_bin, "scanpath b")
    if len(sa) == 0 or len(sb) == 0:
        return math.nan
    distance = np.sqrt(
        (sa[:, None, 0] - sb[None, :, 0]) ** 2 + (sa[:, None, 1] - sb[None, :, 1]) ** 2
    )
    score = _needleman_wunsch(threshold - distance, gap)
    return score / (threshold * max(len(sa), len(sb)))


# --------------------------------------------------------------------------- SequenceScore


def _bandwidth(points: np.ndarray, quantile: float) -> float:
    """scikit-learn's ``estimate_bandwidth``: the mean distance from each point to its
    ``int(quantile * n)``-th nearest point, the point itself counted first."""
    k = max(1, int(len(points) * quantile))
    distance = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return float(np.sort(distance, axis=1)[:, k - 1].mean())


def _mean_shift(points: np.ndarray, bandwidth: float, max_iter: int) -> np.ndarray:
    """Flat-kernel mean shift as scikit-learn's ``MeanShift`` (seeds: all points; every point
    labeled), returning the cluster centers ``(k, 2)``.

    Every point seeds a search that moves to the mean of the points within ``bandwidth`` until
    it moves at most ``bandwidth / 1000``; of converged centers closer than ``bandwidth``, the
    one with more points within ``bandwidth`` stays (on equal counts, the lexicographically
    larger, as scikit-learn orders them).
    """

    def neighbours(centers: np.ndarray) -> np.ndarray:
        """Which points lie within the bandwidth of each center, ``(len(centers), n)`` bool."""
        d2 = ((centers[:, None, :] - points[None, :, :]) ** 2).sum(-1)
        return d2 <= bandwidth**2

    centers = points.copy()
    active = np.ones(len(points), dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        inside = neighbours(centers[active])
        count = inside.sum(1)
        # A mean of points within the bandwidth always has one of them within the bandwidth
        # (their mean squared distance to it is at most bandwidth**2); guard rounding anyway.
        moved = np.where(
            count[:, None] > 0, (inside @ points) / np.maximum(count, 1)[:, None], centers[active]
        )
        going = np.hypot(*(moved - centers[active]).T) > 1e-3 * bandwidth
        centers[active] = moved
        active[np.flatnonzero(active)[~going]] = False
    centers = np.unique(centers, axis=0)
    counts = neighbours(centers).sum(1)
    order = np.lexsort((centers[:, 1], centers[:, 0], counts))[::-1]
    centers, counts = centers[order], counts[order]
    keep = counts > 0
    for c in range(len(centers)):
        if keep[c]:
            near = np.hypot(*(centers - centers[c]).T) <= bandwidth
            near[c] = False
            keep &= ~near
    return centers[keep]


def _transition_rate(sequences: list[np.ndarray], centers: np.ndarray) -> float:
    """``(between - within) / k``: transitions between different clusters minus repeats of the
    same cluster along the scanpaths, per cluster; the bandwidth criterion of [Y20]."""
    between = within = 0
    for seq in sequences:
        labels = _nearest(seq, centers)
        same = int((labels[1:] == labels[:-1]).sum())
        within += same
        between += len(labels) - 1 - same
    return (between - within) / len(centers)


#: Bandwidth multipliers tried by :func:`cluster_fixations`: those of the cluster preprocessing
#: in public scanpath-prediction code that follows [Y20]'s recipe (e.g. ScanDiff's); the recipe
#: as first posted (cvlab-stonybrook/Scanpath_Prediction, issue 24) is also seen with
#: (0.25, 0.5, 1, 1.5, 2, 3, 4).
BANDWIDTH_FACTORS = (0.2, 0.5, 0.8, 1.0, 1.2, 1.5, 1.8)


def cluster_fixations(
    stimulus: Stimulus | Sequence[ScanpathLike],
    *,
    bandwidth: float | None = None,
    factors: Sequence[float] = BANDWIDTH_FACTORS,
    quantile: float = 0.3,
    max_iter: int = 300,
) -> np.ndarray:
    """Cluster centers ``(k, 2)`` of x, y of all human fixations on an image, for SequenceScore.

    The clustering behind the Sequence Score [Y20, C21], as its authors describe it in
    cvlab-stonybrook/Scanpath_Prediction issue 24 (scikit-learn there; a numpy equivalent here,
    tested against it): mean shift over the pooled fixations of the image's scanpaths. Without
    ``bandwidth``, a base bandwidth is estimated as scikit-learn's ``estimate_bandwidth`` does (the
    mean distance from each fixation to its ``int(quantile * n)``-th nearest, itself included) and
    the multiple of it among ``factors`` is kept whose clusters maximize ``(between - within) / k``,
    where ``between`` and ``within`` count consecutive fixations of a scanpath in different and in
    the same cluster, and k is the number of clusters (first best on ties). Accepts a
    :class:`Stimulus` or a sequence of scanpaths.
    """
    paths = stimulus.scanpaths if isinstance(stimulus, Stimulus) else stimulus
    sequences = [_fixations(p, "scanpath")[:, :2] for p in paths]
    points = np.concatenate(sequences or [np.zeros((0, 2))])
    if len(points) == 0:
        raise ValueError("no fixations to cluster")
    if bandwidth is not None:
        if not bandwidth >= 0:
            raise ValueError(f"bandwidth must be >= 0 pixels, got {bandwidth}")
        return _mean_shift(points, bandwidth, max_iter)
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    if not factors or min(factors) <= 0:
        raise ValueError(f"factors must be positive bandwidth multipliers, got {factors!r}")
    base = _bandwidth(points, quantile)
    candidates = [_mean_shift(points, factor * base, max_iter) for factor in factors]
    rates = [_transition_rate(sequences, centers) for centers in candidates]
    return candidates[int(np.argmax(rates))]


def _nearest(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    return np.argmin(d2, axis=1)


def sequence_score(
    a: ScanpathLike,
    b: ScanpathLike,
    *,
    centers: npt.ArrayLike | None = None,
    image_size: tuple[int, int] | None = None,
    grid: tuple[int, int] = DEFAULT_GRID,
    max_length: int | None = None,
) -> float:
    """Sequence Score [Y20, C21]: similarity of the two scanpaths as strings of region labels.

    Each fixation is labeled with its nearest cluster center (``centers``, ``(k, 2)`` of x, y,
    e.g. from :func:`cluster_fixations`, the published definition) or, without centers, with
    its cell of a ``grid`` of (rows, columns) over ``image_size`` (height, width). The label
    strings (optionally cut to their first ``max_length`` fixations, as benchmarks do) are
    aligned by Needleman-Wunsch with score 1 for equal labels, 0 otherwise and no gap penalty,
    and the score is divided by the longer string's length: the length of their longest common
    subsequence over ``max(len)``, in [0, 1]. Durations are not used. NaN if either is empty.
    """
    fa, fb = _fixations(a, "scanpath a"), _fixations(b, "scanpath b")
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) == 0:
            raise ValueError(f"centers must have shape (k, 2) of x, y, got {centers.shape}")
        if image_size is not None:
            height, width = _check_size(image_size, "image_size (height, width)")
            _check_inside(fa, width, height, "scanpath a")
            _check_inside(fb, width, height, "scanpath b")
    elif image_size is None:
        raise ValueError("sequence_score needs either centers or image_size (for the grid)")
    else:
        size = _check_size(image_size, "image_size (height, width)")
        grid = _check_grid(grid)
        _check_inside(fa, size[1], size[0], "scanpath a")
        _check_inside(fb, size[1], size[0], "scanpath b")
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        fa, fb = fa[:max_length], fb[:max_length]
    if len(fa) == 0 or len(fb) == 0:
        return math.nan
    if centers is not None:
        la, lb = _nearest(fa[:, :2], centers), _nearest(fb[:, :2], centers)
    else:
        cells_a, cells_b = _grid_cells(fa, size, grid), _grid_cells(fb, size, grid)
        la = cells_a[:, 0] * grid[1] + cells_a[:, 1]
        lb = cells_b[:, 0] * grid[1] + cells_b[:, 1]
    match = (la[:, None] == lb[None, :]).astype(np.float64)
    return _needleman_wunsch(match, 0.0) / max(len(la), len(lb))


# --------------------------------------------------------------------------- against humans

METRICS: dict[str, Callable[..., Any]] = {
    "multimatch": multimatch,
    "scanmatch": scanmatch,
    "sequence_score": sequence_score,
}


def _bound_metric(metric: Metric, stimulus: Stimulus, kw: dict[str, Any]) -> Callable[..., Any]:
    """``metric`` with ``kw`` and, for a named metric, the image-dependent arguments it lacks
    (see :func:`human_baseline`)."""
    kw = dict(kw)
    if callable(metric):
        return functools.partial(metric, **kw)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)}, or a callable)")
    if metric == "multimatch":
        kw.setdefault("screen_size", (stimulus.width, stimulus.height))
    elif metric == "scanmatch":
        kw.setdefault("image_size", stimulus.size)
        if kw.get("threshold") is None:
            kw["threshold"] = scanmatch_threshold(
                stimulus.scanpaths, kw["image_size"], kw.get("grid", DEFAULT_GRID)
            )
    elif "centers" not in kw and "image_size" not in kw:
        kw["centers"] = cluster_fixations(stimulus)
    return functools.partial(METRICS[metric], **kw)


def _average(results: list[Any]) -> float | dict[str, float]:
    """Mean over the results that are not NaN (per dimension for dicts); NaN if none is."""

    def mean(values: list[float]) -> float:
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        return float(arr.mean()) if arr.size else math.nan

    if isinstance(results[0], dict):
        return {k: mean([r[k] for r in results]) for k in results[0]}
    return mean(results)


def human_baseline(stimulus: Stimulus, metric: Metric, **kw: Any) -> float | dict[str, float]:
    """Inter-observer agreement: every observer's scanpath against every other's, averaged.

    All ordered pairs of different observers are scored with ``metric`` (a name in
    :data:`METRICS` or a callable ``metric(a, b, **kw)``), and the non-NaN scores averaged, per
    dimension for MultiMatch. This is the human reference ("human consistency") that scanpath
    benchmarks report next to models [C21]. NaN with fewer than two observers.

    A named metric gets its image-dependent arguments from the stimulus unless given in ``kw``:
    MultiMatch the image as screen, ScanMatch one :func:`scanmatch_threshold` from all its
    scanpaths (ValueError if they hold fewer than two saccades of different amplitudes),
    SequenceScore the :func:`cluster_fixations` of all its fixations, the compared ones
    included, as in [C21] (``image_size=`` selects grid labels instead).
    """
    score = _bound_metric(metric, stimulus, kw)
    paths = stimulus.scanpaths
    results = [score(p, q) for i, p in enumerate(paths) for j, q in enumerate(paths) if i != j]
    return _average(results) if results else _empty_result(metric)


def score_against_humans(
    predicted_scanpaths: ScanpathLike | Sequence[ScanpathLike],
    stimulus: Stimulus,
    metric: Metric,
    **kw: Any,
) -> float | dict[str, float]:
    """Each predicted scanpath against each human scanpath of the image, averaged.

    The predicted scanpath is the first argument of ``metric``, the human one the second;
    arguments and averaging as in :func:`human_baseline`, so model and human scores compare.
    Accepts one scanpath or a sequence of them; NaN if there is nothing to compare.
    """
    if isinstance(predicted_scanpaths, Scanpath) or (
        isinstance(predicted_scanpaths, np.ndarray) and predicted_scanpaths.ndim == 2
    ):
        predicted_scanpaths = [predicted_scanpaths]
    score = _bound_metric(metric, stimulus, kw)
    results = [score(p, h) for p in predicted_scanpaths for h in stimulus.scanpaths]
    return _average(results) if results else _empty_result(metric)


def _empty_result(metric: Metric) -> float | dict[str, float]:
    if metric == "multimatch" or metric is multimatch:
        return dict.fromkeys(MULTIMATCH_DIMENSIONS, math.nan)
    return math.nan
