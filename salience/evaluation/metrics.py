"""Saliency metrics for one image: classic saliency-map metrics and probabilistic evaluation.

Every function scores ONE image; averaging over images (or weighting images by their number of
fixations, as pysaliency's ``average='fixation'`` does) is left to the caller.

Shared conventions
------------------
* Maps are 2-D float arrays indexed ``[row, col] == [y, x]``.
* Fixations are 0-based float pixel coordinates (:mod:`salience.data.dataset`): a fixation at
  ``(x, y)`` falls on pixel ``(floor(y), floor(x))``. For fixations inside the image this is exactly
  pysaliency's ``x_int``/``y_int`` (``astype(int)``). Fixations outside ``[0, W) x [0, H)`` are an
  error, never silently clipped.
* Errors: an empty fixation array, NaN in a map, maps of different shapes and non-normalized
  log-densities raise :class:`ValueError` (no NaN results). AUC metrics accept ``+-inf`` (they only
  use the ordering); NSS, CC, KL and SIM need finite maps.
* Log-densities are natural-log probability masses per pixel (``exp`` sums to 1 over the image),
  the pysaliency convention; log-likelihoods are reported in bits per fixation.

Two conventions
---------------
Every metric takes ``convention``: ``"pysaliency"`` (the default; the Tübingen benchmark's
definitions, checked against pysaliency in ``tests/test_metrics.py``) or ``"mit"`` (the MIT
saliency benchmark's MATLAB code, implemented in :mod:`salience.evaluation.mit`, where the
differences are listed). In short, the MIT code counts a fixated pixel once (binary fixation
map), samples AUC-Borji's and sAUC's negatives and thresholds their maps at 0, 0.1, ..., 1 only,
uses the sample std in NSS, rescales maps to [0, 1] in SIM, blurs its reference maps with its
own frequency-domain Gaussian, and resizes maps with bicubic ``imresize``. Use ``pysaliency`` to
compare with the Tübingen (MIT/Tübingen) leaderboard and pysaliency users, ``mit`` to compare
with tables computed with the MIT code (the older MIT300 pages, SALICON, many papers' sAUC).
Log-likelihood has no MIT counterpart and has no ``convention``.

References
----------
[MIT]  Bylinskii, Judd, Oliva, Torralba, Durand, "What do different evaluation metrics tell us
       about saliency models?", TPAMI 41(3), 2019, and the MIT saliency benchmark's MATLAB code
       (``AUC_Judd.m``, ``AUC_Borji.m``, ``NSS.m``, ``CC.m``, ``KLdiv.m``, ``similarity.m``).
[PYS]  pysaliency 0.2.22 (M. Kümmerer), the reference implementation of the MIT/Tübingen
       benchmark; the tests in ``tests/test_metrics.py`` compare against it.
[KWB]  Kümmerer, Wallis, Bethge, "Saliency benchmarking made easy: separating models, maps and
       metrics", ECCV 2018 (metric-optimal saliency maps from a predicted density).
[KWB15] Kümmerer, Wallis, Bethge, "Information-theoretic model comparison unifies saliency
       metrics", PNAS 112(52), 2015 (log-likelihood and information gain in bits/fixation).
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter1d

#: The KL epsilon of pysaliency (its rounding of MATLAB's ``eps``, which ``KLdiv.m`` uses).
MIT_EPS = 2.2204e-16

#: The metric conventions: pysaliency's (the default) and the MIT benchmark's MATLAB code's.
CONVENTIONS = ("pysaliency", "mit")
Convention = Literal["pysaliency", "mit"]

#: Metrics whose optimal saliency map is the predicted density itself [KWB].
DENSITY_METRICS = frozenset({"auc_judd", "auc_borji", "auc_uniform", "nss"})
#: Metrics compared against a blurred empirical map; optimum: the expected empirical map [KWB].
EMPIRICAL_MAP_METRICS = frozenset({"cc", "kl_div", "sim"})

_LN2 = math.log(2.0)
# How far sum(exp(log_density)) may stray from 1 before the input is rejected as not normalized;
# loose enough for float32 network outputs over a million pixels.
_NORMALIZATION_TOLERANCE = 1e-3
# Elements per block of the blocked passes (64 KiB of float64). Their scratch buffers are made
# once per call and stay in the CPU's cache; full-size temporaries of a large map cost more in
# page faults on first touch (one per 4 KiB, slow in virtual machines) than the arithmetic.
_BLOCK = 1 << 13
_BAND_ROWS = 64  # rows of a blur matrix per product (see _banded_product)
_MATRIX_SIDE = 4096  # longest side blurred by a matrix product (its matrix: 128 MiB)

Size = tuple[int, int]
Seed = np.random.Generator | int | None


def _is_mit(convention: str) -> bool:
    """True for the MIT convention, False for pysaliency's; anything else is an error."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return convention == "mit"


def _mit() -> ModuleType:
    """:mod:`salience.evaluation.mit`, imported on first use: it builds on this module."""
    from salience.evaluation import mit

    return mit


# --------------------------------------------------------------------------- input validation


def _as_map(values: npt.ArrayLike, name: str, *, finite: bool = True) -> np.ndarray:
    """A 2-D float64 view of ``values``; NaN (and with ``finite``, infinities) is an error."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    if finite:
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    elif np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN values")
    return arr


def _as_log_density(values: npt.ArrayLike, name: str) -> np.ndarray:
    """A 2-D log-density: no NaN or +inf, and ``exp`` sums to 1 (``-inf`` marks probability 0)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    # float32 is ample against the tolerance and about 3x faster than float64 exp; NaN or +inf
    # make the sum NaN or inf, caught below
    flat, total = arr.ravel(), 0.0
    probabilities = np.empty(min(_BLOCK, flat.size), dtype=np.float32)
    for start in range(0, flat.size, _BLOCK):
        block = flat[start : start + _BLOCK]
        out = probabilities[: block.size]
        np.exp(block, out=out, dtype=np.float32, casting="same_kind")
        total += float(out.sum(dtype=np.float64))
    if not abs(total - 1.0) <= _NORMALIZATION_TOLERANCE:
        if not arr.max() < np.inf:  # the maximum is NaN if any value is, +inf if any value is
            raise ValueError(f"{name} contains NaN or +inf values")
        raise ValueError(
            f"{name} is not a normalized log-density: its exponential sums to {total:.6g}, not 1"
        )
    return arr


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} have different shapes: {a.shape} vs {b.shape}")


def _pixels(
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    shape: Size,
    what: str = "fixations",
    *,
    allow_empty: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of each point's pixel, ``(floor(y), floor(x))``, after validation."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"{what}: xs and ys must be 1-D of equal length, got {x.shape}, {y.shape}")
    if x.size == 0 and not allow_empty:
        raise ValueError(f"no {what}: the metric is undefined for an image without {what}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what} contain NaN or infinite coordinates")
    height, width = shape
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        raise ValueError(
            f"{int(outside.sum())} {what} lie outside the {height}x{width} image "
            f"(0-based pixels, x in [0, {width}), y in [0, {height}))"
        )
    return np.floor(y).astype(np.intp), np.floor(x).astype(np.intp)


def _unique_flat(rows: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
    """Flat indices of the distinct fixated pixels (the MIT benchmark's binary fixation map)."""
    return np.unique(rows * width + cols)


# --------------------------------------------------------------------------- maps


def sigma_px(sigma_deg: float, pixels_per_degree: float) -> float:
    """A Gaussian width given in degrees of visual angle, converted to pixels."""
    return float(sigma_deg) * float(pixels_per_degree)


def fixation_map(xs: npt.ArrayLike, ys: npt.ArrayLike, size: Size) -> np.ndarray:
    """Fixation counts per pixel, shape ``size == (height, width)``; no fixations give zeros.

    Same map as pysaliency's ``FixationMap`` without a kernel (duplicates are counted).
    """
    height, width = size
    rows, cols = _pixels(xs, ys, size, allow_empty=True)
    counts = np.bincount(rows * width + cols, minlength=height * width)
    return counts.reshape(height, width).astype(np.float64)


@functools.lru_cache(maxsize=8)
def _blur_matrix(n: int, sigma: float, truncate: float) -> np.ndarray:
    """The (n, n) matrix ``B`` with ``B @ v == gaussian_filter1d(v, sigma, mode='reflect')``.

    Built by filtering the identity, so its weights are scipy's own; read-only because it is cached.
    """
    matrix = gaussian_filter1d(np.eye(n), sigma, axis=0, mode="reflect", truncate=truncate)
    matrix.flags.writeable = False
    return matrix


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma_px must be a positive number of pixels, got {sigma}")
    return sigma


def _blur(image: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma, mode='reflect', truncate=truncate)``.

    Computed as two matrix products (``By @ image @ Bx.T``, see :func:`_banded_product`), which
    BLAS runs faster than the direct 1-D convolutions for the wide kernels used on saliency maps
    (about 9 vs 75 ms for 600x800 at sigma 24 px on 2 cores); the result agrees with
    ``gaussian_filter`` to rounding (about 1e-16 relative). Reflect mode keeps the total mass.
    A side longer than :data:`_MATRIX_SIDE` (a full-page screenshot) is blurred by scipy's
    convolution itself: its matrix would take more memory than the map.
    """
    sigma = _check_sigma(sigma)
    across = _blur_rows(image.T, sigma, truncate)  # (W, H): blurred along the width
    return _blur_rows(across.T, sigma, truncate)  # (H, W)


def _blur_rows(x: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """``x`` (n, m) blurred along its first axis."""
    n = x.shape[0]
    if n > _MATRIX_SIDE:
        return gaussian_filter1d(x, sigma, axis=0, mode="reflect", truncate=truncate)
    return _banded_product(_blur_matrix(n, sigma, truncate), x, sigma, truncate)


def _banded_product(matrix: np.ndarray, x: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """``matrix @ x`` for a blur matrix: each block of rows meets only the rows of ``x`` within
    the kernel's radius (reflection stays within it), which halves the work on 600x800 maps
    at sigma 24 px. The same products are summed (the zeros outside the band left out)."""
    n = matrix.shape[0]
    radius = int(truncate * sigma + 0.5)  # scipy's kernel radius
    if 2 * radius >= n:
        return matrix @ x
    out = np.empty((n, x.shape[1]))
    for start in range(0, n, _BAND_ROWS):
        stop = min(n, start + _BAND_ROWS)
        low, high = max(0, start - radius), min(n, stop + radius)
        np.matmul(matrix[start:stop, low:high], x[low:high], out=out[start:stop])
    return out


def empirical_density(
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    size: Size,
    sigma_px: float,
    *,
    truncate: float = 4.0,
    weights: npt.ArrayLike | None = None,
) -> np.ndarray:
    """The empirical saliency map: the fixation map blurred by a Gaussian, normalized to sum 1.

    The blur is ``scipy.ndimage.gaussian_filter(fixation_map, sigma_px, mode='reflect',
    truncate=truncate)``, i.e. pysaliency's ``FixationMap(kernel_size=sigma_px)`` with its default
    ``convolution_mode='reflect'`` (mass near the border is reflected back, not lost), divided by
    its sum. Pixels further than ``truncate * sigma_px`` from every fixation are exactly 0. Only
    the fixated pixels' kernels are evaluated, so the cost grows with the number of distinct
    fixated pixels, not with the image area. ``weights`` (one per fixation, >= 0, e.g. dwell
    times) replace the fixation counts of the map.
    """
    height, width = size
    rows, cols = _pixels(xs, ys, size)
    sigma = _check_sigma(sigma_px)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != rows.shape or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"weights must be {rows.shape} finite values >= 0")
        if not weights.sum() > 0:
            raise ValueError("weights sum to 0: the empirical map is undefined")
    flat, inverse = np.unique(rows * width + cols, return_inverse=True)
    counts = np.bincount(inverse, weights=weights)  # (k,) fixations (or weight) per pixel
    urows, ucols = np.divmod(flat, width)
    by = _blur_matrix(height, sigma, truncate)[:, urows] * counts  # (height, k)
    bx = _blur_matrix(width, sigma, truncate)[:, ucols]  # (width, k)
    density = by @ bx.T
    density /= density.sum()
    return density


def center_bias_density(size: Size, sigma_x_frac: float, sigma_y_frac: float) -> np.ndarray:
    """A centred Gaussian density over the pixels of a ``size == (height, width)`` image, sum 1.

    The Gaussian is evaluated at pixel centres in normalized coordinates, ``((j + 0.5) / W - 0.5)``
    and ``((i + 0.5) / H - 0.5)``, with standard deviations ``sigma_x_frac`` and ``sigma_y_frac``
    (fractions of the width and height); with equal fractions it is isotropic in normalized
    coordinates. pysaliency's ``GaussianSaliencyMapModel(width=s)`` is the same map up to the sum,
    except that it evaluates at pixel corners ``j / W`` (half a pixel off-centre); it equals ours
    exactly with ``center_x = 0.5 - 0.5 / W``, ``center_y = 0.5 - 0.5 / H``.
    """
    height, width = size
    if not (sigma_x_frac > 0 and sigma_y_frac > 0):
        raise ValueError(f"sigmas must be positive, got {sigma_x_frac}, {sigma_y_frac}")
    gx = ((np.arange(width) + 0.5) / width - 0.5) / sigma_x_frac
    gy = ((np.arange(height) + 0.5) / height - 0.5) / sigma_y_frac
    density = np.outer(np.exp(-0.5 * gy**2), np.exp(-0.5 * gx**2))
    return density / density.sum()


def rescale_fixations(
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    from_size: tuple[npt.ArrayLike, npt.ArrayLike],
    to_size: Size,
) -> tuple[np.ndarray, np.ndarray]:
    """Map points from images of size ``from_size`` (heights, widths) to an image of ``to_size``.

    Used to turn other images' fixations into shuffled-AUC negatives for this image. Coordinates
    are scaled by ``to_width / from_width`` and ``to_height / from_height`` exactly as pysaliency's
    ``FullShuffledNonfixationProvider`` does, so flooring the result gives its pixels.
    """
    from_heights, from_widths = (np.asarray(v, dtype=np.float64) for v in from_size)
    to_height, to_width = to_size
    x = np.asarray(xs, dtype=np.float64) * (to_width / from_widths)
    y = np.asarray(ys, dtype=np.float64) * (to_height / from_heights)
    return x, y


# --------------------------------------------------------------------------- AUC family


def _rng(seed: Seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _exact_auc(positives: np.ndarray, sorted_negatives: np.ndarray) -> float:
    """Area under the exact ROC curve of positives vs negatives (all thresholds).

    Equals P(pos > neg) + 0.5 P(pos == neg), the Mann-Whitney statistic, which is what trapezoidal
    integration of the ROC through every distinct value gives (pysaliency's ``general_roc``).
    Integer counts are summed exactly and divided once.
    """
    below = np.searchsorted(sorted_negatives, positives, side="left")
    not_above = np.searchsorted(sorted_negatives, positives, side="right")
    total = int(below.sum()) + int(not_above.sum())
    return total / (2.0 * positives.size * sorted_negatives.size)


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


# Buckets for counting map values below thresholds without sorting the whole map.
_BUCKETS = 1 << 16


def _count_below(values: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many ``values`` are ``< t`` and ``== t`` for sorted distinct ``thresholds`` from
    ``values``.

    Exact, and about twice as fast as sorting a whole saliency map: values go into 65536 buckets
    by ``floor((v - min) * scale)``, which never decreases as ``v`` grows (every step rounds
    monotonically), so a value in a lower bucket than ``t``'s is ``< t`` and one in a higher bucket
    is ``> t``. Only the values sharing a bucket with some threshold are sorted and compared.
    When those are many (maps with few distinct values) or the range is not finite, the values
    are simply sorted.
    """
    low, high = values.min(), values.max()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scale = _BUCKETS / (high - low)
    if np.isfinite(scale) and scale > 0:
        buckets = np.empty(values.size, dtype=np.intp)
        scratch = np.empty(min(_BLOCK, values.size))
        for start in range(0, values.size, _BLOCK):  # (values - low) * scale, truncated
            block = scratch[: min(_BLOCK, values.size - start)]
            np.subtract(values[start : start + _BLOCK], low, out=block)
            block *= scale
            buckets[start : start + _BLOCK] = block
        t_buckets = ((thresholds - low) * scale).astype(np.intp)
        counts = np.bincount(buckets, minlength=_BUCKETS + 1)
        if counts[np.unique(t_buckets)].sum() <= values.size // 8:
            shares_bucket = np.zeros(_BUCKETS + 1, dtype=bool)
            shares_bucket[t_buckets] = True
            candidates = np.sort(values[shares_bucket[buckets]])
            counts[shares_bucket] = 0  # the rest: values in buckets no threshold falls in
            outside_below = np.cumsum(counts)[t_buckets]
            left = np.searchsorted(candidates, thresholds, side="left")
            right = np.searchsorted(candidates, thresholds, side="right")
            return outside_below + left, right - left
    ordered = np.sort(values)
    left = np.searchsorted(ordered, thresholds, side="left")
    return left, np.searchsorted(ordered, thresholds, side="right") - left


def _uniform_from_counts(
    multiplicity: np.ndarray, below: np.ndarray, equal: np.ndarray, n_pixels: int
) -> float:
    """Exact AUC (ties one half) of positives given as distinct values with multiplicities."""
    total = int(np.dot(multiplicity, 2 * below + equal))
    return total / (2.0 * int(multiplicity.sum()) * n_pixels)


def _judd_from_counts(pixel_counts: np.ndarray, below: np.ndarray, n_pixels: int) -> float:
    """AUC-Judd from, per distinct fixated value, its number of fixated pixels and of pixels below.

    At threshold ``t`` (each fixated value, decreasing) the hits are the fixated pixels ``>= t``
    and the false alarms the other pixels ``>= t``; the curve runs from (0, 0) to (1, 1).
    """
    n_pos = int(pixel_counts.sum())
    n_neg = n_pixels - n_pos
    if n_neg == 0:
        raise ValueError("every pixel is fixated: AUC-Judd needs at least one unfixated pixel")
    pos_at_or_above = n_pos - (np.cumsum(pixel_counts) - pixel_counts)
    all_at_or_above = n_pixels - below
    tpr = pos_at_or_above / n_pos
    fpr = (all_at_or_above - pos_at_or_above) / n_neg
    fpr = np.concatenate(([0.0], fpr[::-1], [1.0]))
    tpr = np.concatenate(([0.0], tpr[::-1], [1.0]))
    return _trapezoid(fpr, tpr)


def auc_uniform(sal: npt.ArrayLike, xs: npt.ArrayLike, ys: npt.ArrayLike) -> float:
    """AUC of fixations against all pixels of the map, exact ROC (ties count one half).

    Positives: the map at every fixation (a pixel fixated twice counts twice). Negatives: every
    pixel, fixated or not. Identical to pysaliency's ``AUC_per_image(nonfixations='uniform')``
    (its ``AUC(..., nonfixations='uniform')`` per image) [PYS]. The MIT code has no such metric
    (its AUC against all pixels is AUC-Judd), so this one has no ``convention``.
    """
    smap = _as_map(sal, "saliency map", finite=False)
    rows, cols = _pixels(xs, ys, smap.shape)
    thresholds, multiplicity = np.unique(smap[rows, cols], return_counts=True)
    below, equal = _count_below(smap.ravel(), thresholds)
    return _uniform_from_counts(multiplicity, below, equal, smap.size)


def auc_shuffled(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    other_xs: npt.ArrayLike,
    other_ys: npt.ArrayLike,
    *,
    rng: Seed = 0,
    convention: Convention = "pysaliency",
) -> float:
    """Shuffled AUC: fixations on this image against fixations from OTHER images.

    ``other_xs``/``other_ys`` must already be in this image's pixel grid (see
    :func:`rescale_fixations`).

    ``convention="pysaliency"``: the exact ROC; every fixation and every negative counts with its
    multiplicity, ties count one half. Identical to pysaliency's
    ``AUC_per_image(nonfixations='shuffled')`` [PYS]; deterministic (``rng`` is unused).

    ``convention="mit"``: ``AUC_shuffled.m`` (:func:`salience.evaluation.mit.auc_shuffled`).
    The negatives' locations are the distinct pixels the other fixations fall on; 100 splits
    each draw as many of them as there are distinct fixated pixels (without replacement, from
    ``rng``), and the min-max-rescaled map is thresholded at 0, 0.1, ..., 1 only. Where most
    pixels lie below 0.1 (peaked maps) the coarse grid merges them into one ROC segment, so
    this convention scores such maps lower: by 0.13 on average for the default model's
    densities on OSIE val (BENCHMARKS.md).
    """
    if _is_mit(convention):
        shape = _as_map(sal, "saliency map").shape
        other_map = _mit().fixation_map(other_xs, other_ys, shape)
        return _mit().auc_shuffled(sal, xs, ys, other_map, rng=rng)
    smap = _as_map(sal, "saliency map", finite=False)
    rows, cols = _pixels(xs, ys, smap.shape)
    other_rows, other_cols = _pixels(other_xs, other_ys, smap.shape, "shuffled negatives")
    return _exact_auc(smap[rows, cols], np.sort(smap[other_rows, other_cols]))


def auc_judd(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    jitter: float | None = None,
    rng: Seed = 0,
    convention: Convention = "pysaliency",
) -> float:
    """AUC-Judd [MIT]: distinct fixated pixels against all unfixated pixels.

    Positives are the distinct fixated pixels (the binary fixation map, so a pixel fixated twice
    counts once); negatives are all unfixated pixels. Thresholds are the positives' values; at
    each threshold ``t`` the true-positive rate is the fraction of positives ``>= t`` and the
    false-positive rate the fraction of negatives ``>= t``; the curve from (0, 0) through these
    points to (1, 1) is integrated with the trapezoidal rule.

    ``convention="pysaliency"`` (salience's default): no jitter unless ``jitter`` is given, and
    tied positives pass a threshold together (a proper ROC point), as pysaliency's
    ``general_roc(judd=1)`` does. pysaliency's own ``AUC_Judd`` differs in counting a pixel once
    per fixation on it and jittering by default; on de-duplicated fixations without jitter the
    two agree exactly.

    ``convention="mit"``: ``AUC_Judd.m`` (:func:`salience.evaluation.mit.auc_judd`): jitter
    ``1e-7 * uniform[0, 1)`` by default (MIT's ``jitter = 1``), and MIT's tie rule: within a
    tie the ``i``-th positive counts as the ``i``-th hit while the tied pixels all count as
    passing, so tied positives are false alarms until their turn and score lower. With
    distinct values and no jitter both conventions give the same number.

    ``jitter > 0`` adds ``jitter * uniform[0, 1)`` noise from ``rng`` before ranking, to break
    ties at random instead of by either rule.
    """
    if _is_mit(convention):
        if jitter is None:
            jitter = _mit().JUDD_JITTER
        return _mit().auc_judd(sal, xs, ys, jitter=jitter, rng=rng)
    smap = _as_map(sal, "saliency map", finite=False)
    rows, cols = _pixels(xs, ys, smap.shape)
    if jitter:
        smap = smap + jitter * _rng(rng).random(smap.shape)
    flat = smap.ravel()
    thresholds, pixel_counts = np.unique(
        flat[_unique_flat(rows, cols, smap.shape[1])], return_counts=True
    )
    below, _ = _count_below(flat, thresholds)
    return _judd_from_counts(pixel_counts, below, flat.size)


def _auc_borji_values(
    values: np.ndarray,
    fixated: np.ndarray,
    n_splits: int,
    step_size: float | None,
    rng: Seed,
) -> float:
    """AUC-Borji of a flattened finite map given the flat indices of the distinct fixated pixels."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be at least 1, got {n_splits}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive or None, got {step_size}")
    sample = _rng(rng).integers(0, values.size, size=(n_splits, fixated.size))
    positives, negatives = values[fixated], values[sample]
    if step_size is None:  # the exact ROC depends on the order only: no rescaling needed
        return float(np.mean([_exact_auc(positives, np.sort(split)) for split in negatives]))
    # Min-max rescaling to [0, 1], applied to the values used only (same result, less work).
    low, span = values.min(), values.max() - values.min()
    if span > 0:
        positives, negatives = (positives - low) / span, (negatives - low) / span
    else:
        positives, negatives = np.zeros_like(positives), np.zeros_like(negatives)
    return float(_grid_auc(positives, negatives, step_size).mean())


def _grid_auc(positives: np.ndarray, negatives: np.ndarray, step_size: float) -> np.ndarray:
    """Per split, the area under the ROC curve sampled at thresholds ``k * step_size`` (MIT).

    ``positives`` (n,) and ``negatives`` (n_splits, m) lie in [0, 1]. TPR and FPR are the
    fractions ``>= t`` for ``t = K * step_size, ..., step_size, 0`` (``K * step_size`` the grid
    point at or below 1), the curve runs from (0, 0) to (1, 1) and the trapezoidal rule
    integrates it. MIT stops each split's grid at that split's maximum; the thresholds above it
    add only (0, 0) points, so the areas are the same.
    """
    # The small slack keeps 1.0 on the grid when 1 / step_size rounds to just below an integer.
    thresholds = np.arange(math.floor(1.0 / step_size + 1e-9), -1, -1) * step_size
    n_splits = negatives.shape[0]
    tpr = (positives[None, :] >= thresholds[:, None]).mean(axis=1)  # (n_thresholds,)
    fpr = (negatives[:, :, None] >= thresholds).mean(axis=1)  # (n_splits, n_thresholds)
    fpr = np.hstack([np.zeros((n_splits, 1)), fpr, np.ones((n_splits, 1))])
    tpr = np.concatenate(([0.0], tpr, [1.0]))
    return np.sum(np.diff(fpr, axis=1) * (tpr[1:] + tpr[:-1]), axis=1) / 2.0


def auc_borji(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    n_splits: int = 100,
    *,
    step_size: float | None = 0.1,
    rng: Seed = 0,
    convention: Convention = "pysaliency",
) -> float:
    """AUC-Borji as in the MIT benchmark's ``AUC_Borji.m`` [MIT]; pysaliency has no equivalent.

    Both conventions give the same number for the same ``rng`` (the same draws, thresholds and
    areas); ``convention="mit"`` (:func:`salience.evaluation.mit.auc_borji`) refuses
    ``step_size=None``, which is not MIT's.

    The map is rescaled to [0, 1] (min-max; a constant map becomes all zeros and scores 0.5).
    Positives are the distinct fixated pixels. For each of ``n_splits`` splits, as many negatives
    as positives are drawn uniformly, with replacement, from all pixels with
    ``rng.integers(0, n_pixels, size=(n_splits, n_positives))`` (seeded: the default ``rng=0`` is
    reproducible). Thresholds are ``k * step_size`` for ``k = 0, 1, ...`` up to the map maximum,
    TPR/FPR are the fractions ``>= t``, the curve runs from (0, 0) to (1, 1) and is integrated with
    the trapezoidal rule; the score is the mean over splits. MIT stops each split's grid at that
    split's maximum; the extra thresholds here lie above every value of the split and add only
    (0, 0) points, so the areas are equal. ``step_size=None`` uses the exact ROC instead (every
    value a threshold, ties count one half).
    """
    if _is_mit(convention):
        if step_size is None:
            raise ValueError("the MIT convention thresholds at a fixed step: give a step_size")
        return _mit().auc_borji(sal, xs, ys, n_splits=n_splits, step_size=step_size, rng=rng)
    smap = _as_map(sal, "saliency map")
    rows, cols = _pixels(xs, ys, smap.shape)
    fixated = _unique_flat(rows, cols, smap.shape[1])
    return _auc_borji_values(smap.ravel(), fixated, n_splits, step_size, rng)


# --------------------------------------------------------------------------- other map metrics


def _is_constant(smap: np.ndarray) -> bool:
    """True for a map whose values differ by no more than float rounding (1e-12 relative).

    A constant map blurred or exponentiated picks up ~1e-16 noise; dividing by its std would
    turn that noise into an arbitrary NSS or CC instead of the 0 a constant map scores.
    """
    low, high = float(smap.min()), float(smap.max())
    return high - low <= 1e-12 * max(abs(low), abs(high))


def _nss(smap: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    mean = smap.mean()
    flat = smap.ravel()
    squares, scratch = 0.0, np.empty(min(_BLOCK, flat.size))
    for start in range(0, flat.size, _BLOCK):  # smap.std(), blocked
        block = scratch[: min(_BLOCK, flat.size - start)]
        np.subtract(flat[start : start + _BLOCK], mean, out=block)
        squares += float(np.einsum("i,i->", block, block))
    std = math.sqrt(squares / flat.size)
    if std == 0 or _is_constant(smap):
        return 0.0
    return float((smap[rows, cols].mean() - mean) / std)


def nss(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    convention: Convention = "pysaliency",
) -> float:
    """Normalized scanpath saliency: the mean of ``(sal - mean) / std`` at the fixations.

    ``convention="pysaliency"`` [PYS]: population std (``ddof=0``) and every fixation counts
    (a pixel fixated twice counts twice). ``convention="mit"``: ``NSS.m``
    (:func:`salience.evaluation.mit.nss`): MATLAB's sample std (``ddof=1``, a factor
    ``sqrt((N - 1) / N)``, 1e-6 relative for 800x600) and the mean over the distinct fixated
    pixels (the binary fixation map), which differs wherever pixels are fixated repeatedly (by
    up to 0.34 on an OSIE val image for the default model's peaked density). Both: a constant map
    scores 0 (MATLAB returns NaN), and the score is invariant to ``a * sal + b`` for ``a > 0``.
    """
    if _is_mit(convention):
        return _mit().nss(sal, xs, ys)
    smap = _as_map(sal, "saliency map")
    rows, cols = _pixels(xs, ys, smap.shape)
    return _nss(smap, rows, cols)


def _cc(a: np.ndarray, b: np.ndarray) -> float:
    if _is_constant(a) or _is_constant(b):
        return 0.0
    mean_a, mean_b, a, b = a.mean(), b.mean(), a.ravel(), b.ravel()
    aa = bb = ab = 0.0
    da, db = np.empty(min(_BLOCK, a.size)), np.empty(min(_BLOCK, a.size))
    for start in range(0, a.size, _BLOCK):
        n = min(_BLOCK, a.size - start)
        np.subtract(a[start : start + n], mean_a, out=da[:n])
        np.subtract(b[start : start + n], mean_b, out=db[:n])
        # einsum's own loops: BLAS dot products stall when torch's thread pool is also loaded.
        aa += float(np.einsum("i,i->", da[:n], da[:n]))
        bb += float(np.einsum("i,i->", db[:n], db[:n]))
        ab += float(np.einsum("i,i->", da[:n], db[:n]))
    denominator = math.sqrt(aa * bb)
    if denominator == 0:
        return 0.0
    return ab / denominator


def _two_maps(sal: npt.ArrayLike, ref_map: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = _as_map(sal, "saliency map")
    b = _as_map(ref_map, "reference map")
    _check_same_shape(a, b, "saliency map and reference map")
    return a, b


def cc(
    sal: npt.ArrayLike, ref_map: npt.ArrayLike, *, convention: Convention = "pysaliency"
) -> float:
    """Pearson correlation between a saliency map and a reference (empirical) map.

    Same value as pysaliency's ``CC`` and MIT's ``CC.m`` for maps of equal size. Symmetric; 0
    when either map is constant (pysaliency returns 0 only when the first one is, NaN when only
    the second one is; MIT returns NaN). ``convention="mit"``
    (:func:`salience.evaluation.mit.cc`) differs only in resizing a map of another size to the
    reference's with bicubic ``imresize``, where the pysaliency convention refuses it. (The
    reference maps that evaluation builds differ between the conventions.)
    """
    if _is_mit(convention):
        return _mit().cc(sal, ref_map)
    return _cc(*_two_maps(sal, ref_map))


def _distribution(smap: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A map as a distribution over pixels, as pysaliency's ``convert_saliency_map_to_density``,
    described rather than made: ``(values, low, total)`` with the distribution
    ``(values - low) / total`` (``total`` 0: uniform); see :func:`_distribution_block`.

    Maps with negative values are shifted so their minimum is 0; a map summing to 0 becomes
    uniform. Non-negative maps are only divided by their sum, as in MIT's ``KLdiv.m``.
    """
    flat = smap.ravel()
    low = float(flat.min())
    if low >= 0:
        return flat, 0.0, float(flat.sum())
    total = sum(float((flat[i : i + _BLOCK] - low).sum()) for i in range(0, flat.size, _BLOCK))
    return flat, low, total


def _distribution_block(
    form: tuple[np.ndarray, float, float], start: int, out: np.ndarray
) -> np.ndarray:
    """The distribution :func:`_distribution` describes at ``start : start + len(out)``."""
    values, low, total = form
    block = values[start : start + out.size]
    if not total > 0:
        out.fill(1.0 / values.size)
    elif low < 0:
        np.subtract(block, low, out=out)
        out /= total
    else:
        np.divide(block, total, out=out)
    return out


def _kl(a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """KL of the distributions of ``b`` (reference) and ``a`` (prediction), in blocks."""
    p_form, q_form = _distribution(a), _distribution(b)
    p, q = np.empty(min(_BLOCK, a.size)), np.empty(min(_BLOCK, a.size))
    total = 0.0
    for start in range(0, a.size, _BLOCK):
        n = min(_BLOCK, a.size - start)
        terms = _distribution_block(p_form, start, p[:n])
        ref = _distribution_block(q_form, start, q[:n])
        # Pixels with q == 0 contribute 0 * log(eps) == 0 exactly.
        terms += eps
        np.divide(ref, terms, out=terms)
        terms += eps
        np.log(terms, out=terms)
        total += float(np.einsum("i,i->", ref, terms))
    return total


def kl_div(
    sal: npt.ArrayLike,
    ref_map: npt.ArrayLike,
    eps: float | None = None,
    *,
    convention: Convention = "pysaliency",
) -> float:
    """Image-based KL divergence KL(reference || prediction), in nats, as MIT's ``KLdiv.m``.

    Both maps become distributions (divided by their sum), then
    ``sum(q * log(eps + q / (p + eps)))`` with ``q`` the reference map and ``p`` the saliency map.
    Lower is better; 0 for identical maps up to about ``eps * n_pixels``.

    ``convention="pysaliency"``: pysaliency's ``MIT_KLDiv(sal, ref_map)``: ``eps = 2.2204e-16``
    (by default), maps with negative values are shifted to a minimum of 0 first, and a map
    summing to 0 becomes uniform. ``convention="mit"`` (:func:`salience.evaluation.mit.kl_div`):
    MATLAB's ``eps = 2^-52`` by default (a 2e-21 relative difference), negative values are an
    error (MATLAB's logarithm turns complex), an all-zero map stays zero, and a map of another
    size is resized to the reference's. On non-negative maps of equal size the two agree to
    rounding.
    """
    if _is_mit(convention):
        return _mit().kl_div(sal, ref_map, eps=_mit().MATLAB_EPS if eps is None else eps)
    a, b = _two_maps(sal, ref_map)
    return _kl(a, b, MIT_EPS if eps is None else eps)


def _sim(a: np.ndarray, b: np.ndarray) -> float:
    """Histogram intersection of the distributions of ``a`` and ``b``, in blocks."""
    p_form, q_form = _distribution(a), _distribution(b)
    p, q = np.empty(min(_BLOCK, a.size)), np.empty(min(_BLOCK, a.size))
    total = 0.0
    for start in range(0, a.size, _BLOCK):
        n = min(_BLOCK, a.size - start)
        shared = np.minimum(
            _distribution_block(p_form, start, p[:n]), _distribution_block(q_form, start, q[:n])
        )
        total += float(shared.sum())
    return total


def sim(
    sal: npt.ArrayLike, ref_map: npt.ArrayLike, *, convention: Convention = "pysaliency"
) -> float:
    """Similarity (histogram intersection): ``sum(min(p, q))`` of the two maps as distributions.

    ``convention="pysaliency"``: pysaliency's ``SIM`` [PYS]: maps are divided by their sum and
    shifted only if they have negative values. ``convention="mit"``: ``similarity.m``
    (:func:`salience.evaluation.mit.sim`): each map is first rescaled to [0, 1] (its minimum
    subtracted even when positive), which changes the score of maps whose minimum is above 0
    (about 0.004 on spectral-residual maps, issue 21), and a map of another size is resized to the
    reference's. Both: symmetric, in [0, 1], 1 for identical maps.
    """
    if _is_mit(convention):
        return _mit().sim(sal, ref_map)
    a, b = _two_maps(sal, ref_map)
    return _sim(a, b)


# --------------------------------------------------------------------------- probabilistic metrics


def log_likelihood(
    log_density: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    baseline: npt.ArrayLike | None = None,
) -> float:
    """Mean log-likelihood of the fixations in bits per fixation [KWB15].

    ``mean(log_density[fixation pixels]) / ln 2`` where ``log_density`` is a natural-log
    probability per pixel. pysaliency's ``log_likelihood`` returns the same mean in nats and does
    not subtract any baseline; its ``information_gain`` subtracts a baseline model's
    log-likelihood (uniform by default) and divides by ln 2. With ``baseline`` (a log-density of
    the same shape) this returns that difference, i.e. :func:`information_gain`.
    """
    logp = _as_log_density(log_density, "log_density")
    base = None if baseline is None else _as_log_density(baseline, "baseline log_density")
    return _log_likelihood(logp, xs, ys, base)


def _log_likelihood(
    logp: np.ndarray, xs: npt.ArrayLike, ys: npt.ArrayLike, base: np.ndarray | None
) -> float:
    """:func:`log_likelihood` of checked log-densities."""
    rows, cols = _pixels(xs, ys, logp.shape)
    value = logp[rows, cols].mean()
    if base is not None:
        _check_same_shape(logp, base, "log_density and baseline")
        value = value - base[rows, cols].mean()
    return float(value / _LN2)


def information_gain(
    log_density: npt.ArrayLike,
    baseline_log_density: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    convention: Convention = "pysaliency",
) -> float:
    """Information gain over a baseline in bits per fixation [KWB15].

    ``convention="pysaliency"``: ``mean(log p - log b) / ln 2`` over fixations, pysaliency's
    ``information_gain`` for one image. ``convention="mit"``: ``InfoGain.m``
    (:func:`salience.evaluation.mit.information_gain` of ``exp`` of both): each map is rescaled
    to [0, 1] and divided by its sum, so its least likely pixel gets probability 0, then
    ``mean(log2(eps + p) - log2(eps + b))`` over the distinct fixated pixels. For a uniform
    baseline pass ``np.full(shape, -np.log(height * width))``.
    """
    if _is_mit(convention):
        logp = _as_log_density(log_density, "log_density")
        base = _as_log_density(baseline_log_density, "baseline log_density")
        _check_same_shape(logp, base, "log_density and baseline")
        return _mit().information_gain(np.exp(logp), np.exp(base), xs, ys)
    return log_likelihood(log_density, xs, ys, baseline=baseline_log_density)


def optimal_saliency_map(
    log_density: npt.ArrayLike,
    metric: str,
    *,
    sigma_px: float | None = None,
    baseline_log_density: npt.ArrayLike | None = None,
    truncate: float = 4.0,
) -> np.ndarray:
    """The saliency map that a predicted density expects to score best on ``metric`` [KWB].

    * ``auc_judd``, ``auc_borji``, ``auc_uniform``, ``nss``: the density ``p`` itself (ranking by
      ``p`` maximizes the expected AUC against uniform negatives; ``p`` maximizes expected NSS).
    * ``auc_shuffled``: ``p / b`` where ``b`` (``baseline_log_density``) is the distribution the
      negatives come from, e.g. the average prediction over the other images. Returned as
      ``log p - log b`` (same ranking, so the same AUC, and no overflow or underflow); pixels where
      both are 0 get ``-inf``.
    * ``cc``, ``kl_div``, ``sim``: the expected empirical map, ``p`` blurred with the same Gaussian
      as :func:`empirical_density` (``sigma_px``, reflect boundaries). Because that blur keeps the
      mass, it is exactly the expectation of the empirical density of fixations drawn from ``p``;
      it minimizes the expected KL divergence and is the paper's map for CC. For SIM the true
      optimum must be found by numerical optimization (pysaliency's ``SIMSaliencyMapModel``); the
      expected empirical map is used here as an approximation and does not maximize SIM exactly.
    """
    logp = _as_log_density(log_density, "log_density")
    if metric in DENSITY_METRICS:
        return np.exp(logp)
    if metric == "auc_shuffled":
        if baseline_log_density is None:
            raise ValueError(
                "auc_shuffled needs baseline_log_density, the distribution of its negatives"
            )
        base = _as_log_density(baseline_log_density, "baseline_log_density")
        return _shuffled_ratio(logp, base)
    if metric in EMPIRICAL_MAP_METRICS:
        if sigma_px is None:
            raise ValueError(f"{metric} needs sigma_px, the blur of the empirical map")
        return _blur(np.exp(logp), sigma_px, truncate)
    known = sorted(DENSITY_METRICS | EMPIRICAL_MAP_METRICS | {"auc_shuffled"})
    raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(known)}")


def _shuffled_ratio(logp: np.ndarray, base: np.ndarray) -> np.ndarray:
    """sAUC's optimal map ``log p - log b`` of checked log-densities (see
    :func:`optimal_saliency_map`)."""
    _check_same_shape(logp, base, "log_density and baseline_log_density")
    with np.errstate(invalid="ignore"):
        ratio = logp - base
    zero = np.isneginf(logp)
    if zero.any():
        ratio[zero & np.isneginf(base)] = -np.inf
    return ratio


def _density_metrics(
    smap: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_splits: int, rng: Seed
) -> dict[str, float]:
    """AUC-Judd, AUC-Borji, uniform AUC and NSS of a finite map, counting its values once.

    The fixations' values and the distinct fixated pixels' values have the same distinct values,
    so one :func:`_count_below` serves both AUCs.
    """
    flat = smap.ravel()
    fixated = _unique_flat(rows, cols, smap.shape[1])
    thresholds, multiplicity = np.unique(smap[rows, cols], return_counts=True)
    _, pixel_counts = np.unique(flat[fixated], return_counts=True)
    below, equal = _count_below(flat, thresholds)
    return {
        "auc_judd": _judd_from_counts(pixel_counts, below, flat.size),
        "auc_borji": _auc_borji_values(flat, fixated, n_splits, 0.1, rng),
        "auc_uniform": _uniform_from_counts(multiplicity, below, equal, flat.size),
        "nss": _nss(smap, rows, cols),
    }


def evaluate_map(
    prediction: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    mode: Literal["map", "probabilistic"] = "map",
    ref_map: npt.ArrayLike | None = None,
    sigma_px: float | None = None,
    other_xs: npt.ArrayLike | None = None,
    other_ys: npt.ArrayLike | None = None,
    baseline_log_density: npt.ArrayLike | None = None,
    shuffled_log_density: npt.ArrayLike | None = None,
    n_splits: int = 100,
    rng: Seed = 0,
    convention: Convention = "pysaliency",
) -> dict[str, float]:
    """Every metric for one image, keyed by function name; the values equal the functions' own.

    ``convention="mit"`` hands over to :func:`salience.evaluation.mit.evaluate_map` (the MIT
    metrics, MIT reference maps from ``sigma_px``, sAUC negatives at the distinct pixels of
    ``other_xs``/``other_ys``; no ``auc_uniform``). The rest describes the pysaliency convention.

    ``mode='map'``: ``prediction`` is a saliency map, scored as given. ``mode='probabilistic'``:
    ``prediction`` is a log-density; each metric scores :func:`optimal_saliency_map` for it, and
    ``log_likelihood`` and ``information_gain`` (against ``baseline_log_density``, uniform when
    None) are added. The sAUC map uses ``shuffled_log_density`` as the negatives' distribution;
    without it the density itself is used (optimal only if the negatives were uniform).

    CC, KL and SIM compare against ``ref_map``; when it is None it is built with
    :func:`empirical_density` from ``sigma_px``; with neither, those three are left out (in
    probabilistic mode ``sigma_px`` is required for them). sAUC is left out without
    ``other_xs``/``other_ys`` (negatives in this image's pixel grid). AUC-Borji uses its defaults
    (``step_size=0.1``) with ``n_splits`` and ``rng``. Values are computed once and shared (one
    sort of the map serves both AUC-Judd and the uniform AUC).
    """
    if _is_mit(convention):
        other_map = None
        if other_xs is not None and other_ys is not None:
            shape = _as_map(prediction, "prediction", finite=False).shape
            other_map = _mit().fixation_map(other_xs, other_ys, shape)
        return _mit().evaluate_map(
            prediction,
            xs,
            ys,
            mode=mode,
            ref_map=ref_map,
            sigma_px=sigma_px,
            other_map=other_map,
            baseline_log_density=baseline_log_density,
            shuffled_log_density=shuffled_log_density,
            n_splits=n_splits,
            rng=rng,
        )
    if mode == "map":
        smap = _as_map(prediction, "saliency map")
        density_map = shuffled_map = empirical_map = smap
    elif mode == "probabilistic":
        logp = _as_log_density(prediction, "log_density")  # each density is checked once
        base = None
        if baseline_log_density is not None:
            base = _as_log_density(baseline_log_density, "baseline log_density")
        density_map = np.exp(logp)
        shuffled_map = density_map
        if shuffled_log_density is not None:
            shuffled = base
            if shuffled_log_density is not baseline_log_density:
                shuffled = _as_log_density(shuffled_log_density, "baseline_log_density")
            shuffled_map = _shuffled_ratio(logp, shuffled)
        if sigma_px is None and ref_map is not None:
            raise ValueError("probabilistic mode needs sigma_px to build the CC/KL/SIM map")
        empirical_map = None if sigma_px is None else _blur(density_map, sigma_px, 4.0)
    else:
        raise ValueError(f"mode must be 'map' or 'probabilistic', got {mode!r}")
    rows, cols = _pixels(xs, ys, density_map.shape)

    results = _density_metrics(density_map, rows, cols, n_splits, rng)
    if other_xs is not None and other_ys is not None:
        results["auc_shuffled"] = auc_shuffled(shuffled_map, xs, ys, other_xs, other_ys)
    if ref_map is None and sigma_px is not None:
        ref_map = empirical_density(xs, ys, density_map.shape, sigma_px)
    if ref_map is not None:
        pred_map, ref = _two_maps(empirical_map, ref_map)
        results["cc"] = _cc(pred_map, ref)
        results["kl_div"] = _kl(pred_map, ref, MIT_EPS)
        results["sim"] = _sim(pred_map, ref)
    if mode == "probabilistic":
        if base is None:
            base = np.full(logp.shape, -math.log(logp.size))
        results["log_likelihood"] = _log_likelihood(logp, xs, ys, None)
        results["information_gain"] = _log_likelihood(logp, xs, ys, base)
    return results
