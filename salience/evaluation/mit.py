"""The MIT saliency benchmark's metric conventions, beside pysaliency's in :mod:`.metrics`.

:mod:`salience.evaluation.metrics` follows pysaliency (the Tübingen benchmark). Most published
tables before it (the MIT300 and MIT1003 benchmark pages, SALICON, many papers' sAUC columns)
were computed with the MIT benchmark's MATLAB code (``code_forMetrics`` in Bylinskii et al.'s
``saliency`` repository), whose definitions differ in places. This module implements those
definitions, written from the MATLAB code's behaviour (no code copied; it carries no license),
so that a figure can be put next to such a table. Select it with ``convention="mit"`` in the
metric functions of :mod:`.metrics`, in :func:`salience.evaluation.evaluate.evaluate`, or with
``salience eval --convention mit``.

What the MIT code does that pysaliency does not:

* **Resizing.** A saliency map of another size than the fixation map is resized to it with
  MATLAB's ``imresize`` default: bicubic (Keys, ``a = -0.5``), with antialiasing when shrinking,
  and symmetric (mirror) padding at the borders (:func:`imresize`). Bilinear is not used because
  every metric file calls ``imresize`` without a method, and bicubic is MATLAB's default. (GNU
  Octave's ``imresize`` is a different implementation, not checked here: to compare with an
  Octave run, give maps at the fixation map's size, where no resizing happens.)
* **Binary fixation maps.** The fixation-based metrics see the distinct fixated pixels (a pixel
  fixated twice counts once): AUC-Judd, AUC-Borji, sAUC, NSS and IG.
* **Rescaling.** AUC-Borji, sAUC, SIM and IG first rescale each map to [0, 1] (minimum to 0,
  maximum to 1): a map with a floor above zero loses it.
* **Sampled ROC curves.** AUC-Borji and sAUC draw negatives in 100 random splits and threshold
  only at 0, 0.1, ..., 1 (seeded here).
* **NSS** uses the sample standard deviation (``N - 1``); **KL** uses MATLAB's ``eps``
  (2^-52) where pysaliency writes 2.2204e-16.
* **Reference maps** for CC, KL and SIM are the binary fixation map blurred with
  ``antonioGaussian`` (a Gaussian defined in the frequency domain, on a zero-padded
  power-of-two grid, :func:`antonio_blur`), where salience blurs fixation counts with a spatial
  Gaussian and reflecting borders. Because MIT converts the blur's ``sigma`` into a cut-off
  frequency relative to the image's longer side but applies it on the padded power-of-two grid,
  its effective spatial sigma is ``sigma * n / max(height, width)`` with ``n`` that power of two
  (1.28 times wider for an 800x600 image). This is the repository's current ``antonioGaussian``
  (zero padding to ``2n x 2n``, edited in 2017); the original filtered on the ``n x n`` grid
  without padding, so its blur wrapped around the image's borders.

Where the MATLAB code divides by zero (a constant map) and returns NaN, these functions return
the chance level instead, as the pysaliency convention does: AUCs 0.5, NSS and CC 0, and SIM
and IG treat the constant map as uniform. Randomness (AUC-Judd's jitter, AUC-Borji's and sAUC's
negatives) comes from numpy generators, seeded by default: the figures are reproducible, but
not draw for draw the ones MATLAB's generator gives.

Reference: Bylinskii, Judd, Oliva, Torralba, Durand, "What do different evaluation metrics tell
us about saliency models?", TPAMI 41(3), 2019, and its code (``AUC_Judd.m``, ``AUC_Borji.m``,
``AUC_shuffled.m``, ``NSS.m``, ``CC.m``, ``KLdiv.m``, ``similarity.m``, ``InfoGain.m``,
``antonioGaussian.m``, ``run_antonioGaussian.m``; the choice of 10 other images for sAUC's
negatives from its scoring code).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from salience.evaluation.metrics import (
    Seed,
    Size,
    _as_log_density,
    _as_map,
    _cc,
    _count_below,
    _grid_auc,
    _is_constant,
    _pixels,
    _rng,
    _trapezoid,
    _unique_flat,
    log_likelihood,
)

#: MATLAB's ``eps`` (2^-52), the epsilon of ``KLdiv.m`` and ``InfoGain.m``.
MATLAB_EPS = float(np.finfo(np.float64).eps)
#: The amplitude of ``AUC_Judd.m``'s default jitter (uniform noise in [0, 1e-7)).
JUDD_JITTER = 1e-7
#: How many other images' fixations the MIT scoring code pools as sAUC negatives (as Borji).
SHUFFLED_IMAGES = 10


# --------------------------------------------------------------------------- resizing


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5``, MATLAB's bicubic kernel."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=16)
def _resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """The (out_len, in_len) matrix of MATLAB's bicubic ``imresize`` along one axis.

    Output pixel ``i`` (1-based) samples input position ``u = i / s + (1 - 1 / s) / 2`` with
    ``s = out_len / in_len``. Shrinking widens the kernel by ``1 / s`` and scales it by ``s``
    (antialiasing). Each row's weights are normalized to sum 1; positions beyond the border
    mirror back into the image (``1, 2, ..., n, n, ..., 1``). Read-only because it is cached.
    """
    scale = out_len / in_len
    shrink = scale < 1
    width = 4.0 / scale if shrink else 4.0
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    positions = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    distance = u[:, None] - positions
    weights = scale * _cubic(scale * distance) if shrink else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    columns = mirror[np.mod(positions.astype(np.intp) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), columns.ravel()), weights.ravel())
    matrix.flags.writeable = False
    return matrix


def imresize(image: npt.ArrayLike, size: Size) -> np.ndarray:
    """A 2-D map resized to ``size == (height, width)`` as MATLAB's ``imresize(map, size)``.

    Bicubic interpolation (Keys, ``a = -0.5``) with antialiasing when shrinking and mirrored
    borders, MATLAB's default and what every MIT metric file uses; the result is float64, not
    clipped (bicubic overshoots a little near sharp edges, possibly below 0). A map already of
    ``size`` comes back unchanged (the kernel is 1 at 0 and 0 at the other integers).
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"a map to resize must be a non-empty 2-D array, got shape {arr.shape}")
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize to {height}x{width}")
    if arr.shape == (height, width):
        return arr.copy()
    rows = _resize_matrix(arr.shape[0], height)
    cols = _resize_matrix(arr.shape[1], width)
    return rows @ arr @ cols.T


def _resized(sal: npt.ArrayLike, size: Size | None, name: str = "saliency map") -> np.ndarray:
    smap = _as_map(sal, name)
    if size is None or tuple(size) == smap.shape:
        return smap
    return imresize(smap, size)


# --------------------------------------------------------------------------- fixation maps


def fixation_map(xs: npt.ArrayLike, ys: npt.ArrayLike, size: Size) -> np.ndarray:
    """The binary fixation map: 1 at every fixated pixel ``(floor(y), floor(x))``, else 0."""
    height, width = size
    rows, cols = _pixels(xs, ys, size)
    binary = np.zeros(height * width)
    binary[_unique_flat(rows, cols, width)] = 1.0
    return binary.reshape(height, width)


def _check_sigma(sigma_px: float) -> float:
    sigma = float(sigma_px)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma_px must be a positive number of pixels, got {sigma_px}")
    return sigma


@functools.lru_cache(maxsize=8)
def _antonio_matrices(length: int, longest: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary part of MIT's 1-D blur along an axis of ``length`` pixels.

    ``antonioGaussian`` pads the image with zeros into a ``2n x 2n`` grid (``n``: the power of
    two at or above ``longest``, the image at offset ``(n, n)``) and multiplies its spectrum by
    ``exp(-(fx^2 + fy^2) / s^2)``, a product of one factor per axis. So the blur is a circular
    convolution with ``k = ifft(g)`` along each axis of the grid, ``g(f) = exp(-f^2 / s^2)`` at
    the integer frequencies ``-n/2 <= f < n/2`` (0 beyond). The image and the crop lie inside
    one window of the grid, where that convolution is the Toeplitz matrix ``k[(i - j) mod 2n]``.
    ``g`` lacks the frequency ``+n/2`` that it has at ``-n/2``, so ``k`` has an imaginary part
    (zero when ``g(-n/2)`` underflows, as it does for any blur wider than a few pixels).
    Read-only because they are cached.
    """
    cutoff = longest * math.sqrt(math.log(2.0) / (2.0 * math.pi**2 * sigma**2))
    n = 2 ** math.ceil(math.log2(longest + longest % 2))
    grid = 2 * n
    s = 2.0 * cutoff / math.sqrt(math.log(2.0))  # round(grid / n) * fc / sqrt(ln 2)
    freq = np.fft.fftfreq(grid, d=1.0 / grid)  # integer frequencies 0, 1, ..., -1
    gauss = np.where((freq >= -n / 2) & (freq < n / 2), np.exp(-(freq**2) / s**2), 0.0)
    kernel = np.fft.ifft(gauss)
    offsets = np.subtract.outer(np.arange(length), np.arange(length)) % grid
    real = kernel.real[offsets]
    imag = kernel.imag[offsets] if gauss[grid - n // 2] > 0 else np.zeros((length, 0))
    for matrix in (real, imag):
        matrix.flags.writeable = False
    return real, imag


def _antonio_axes(size: Size, sigma_px: float) -> tuple[np.ndarray, ...]:
    """The rows' and columns' matrices of :func:`_antonio_matrices` for an image of ``size``."""
    sigma = _check_sigma(sigma_px)
    height, width = (int(v) for v in size)
    longest = max(height, width)
    return (*_antonio_matrices(height, longest, sigma), *_antonio_matrices(width, longest, sigma))


def _real_product(
    row_re: np.ndarray, row_im: np.ndarray, col_re: np.ndarray, col_im: np.ndarray, mid: np.ndarray
) -> np.ndarray:
    """``Re((A + iB) M (C + iD)^T)`` for real ``M``: ``A M C^T - B M D^T``."""
    result = row_re @ mid @ col_re.T
    if row_im.shape[1]:
        result -= row_im @ mid @ col_im.T
    return result


def antonio_blur(image: npt.ArrayLike, sigma_px: float) -> np.ndarray:
    """``run_antonioGaussian(image, sigma)``: MIT's Gaussian blur, defined in frequency space.

    The cut-off frequency is ``fc = max(h, w) * sqrt(ln 2 / (2 pi^2 sigma^2))``; the image is
    zero-padded into a ``2n x 2n`` grid (``n``: the power of two at or above ``max(h, w)``,
    the image at offset ``(n, n)``), multiplied in the Fourier domain by
    ``exp(-(fx^2 + fy^2) / s^2)`` with ``s = 2 fc / sqrt(ln 2)`` for integer frequencies
    ``-n/2 <= f < n/2`` of that grid (0 beyond), and cropped back; the real part is kept. The
    effective spatial sigma is ``sigma * n / max(h, w)``, and mass near the border is lost to
    the padding. Computed as the same convolution in the image domain (:func:`_antonio_matrices`:
    two matrix products instead of FFTs of the padded grid, which are 10x slower).
    """
    img = _as_map(image, "image")
    row_re, row_im, col_re, col_im = _antonio_axes(img.shape, sigma_px)
    return _real_product(row_re, row_im, col_re, col_im, img)


def reference_map(xs: npt.ArrayLike, ys: npt.ArrayLike, size: Size, sigma_px: float) -> np.ndarray:
    """The reference ("fixation") map of CC, KL and SIM as MIT builds it.

    The binary fixation map (:func:`fixation_map`) blurred by :func:`antonio_blur` with
    ``sigma_px``, computed from the fixated pixels' columns of the blur's matrices only. Values
    below 0, round-off of order 1e-17 in the kernel's far tail, are set to 0 (MIT stores these
    maps as images, which cannot hold them; KL would take the logarithm of a negative number).
    Not normalized: CC, KL and SIM do not depend on the scale.
    """
    width = size[1]
    rows, cols = _pixels(xs, ys, size)
    rows, cols = np.divmod(_unique_flat(rows, cols, width), width)
    row_re, row_im, col_re, col_im = _antonio_axes(size, sigma_px)
    blurred = row_re[:, rows] @ col_re[:, cols].T
    if row_im.shape[1]:
        blurred -= row_im[:, rows] @ col_im[:, cols].T
    return np.maximum(blurred, 0.0)


def shuffled_map(
    others: Sequence[tuple[npt.ArrayLike, npt.ArrayLike, Size]], size: Size
) -> np.ndarray:
    """sAUC's ``otherMap`` as MIT's scoring code builds it from other images' fixations.

    ``others`` holds ``(xs, ys, (height, width))`` per other image, in that image's pixels.
    Each image's binary fixation map is resized to ``size`` with :func:`imresize` (bicubic, so
    a fixation marks the pixels its kernel reaches positively when sizes differ) and the maps
    are summed; sAUC's negatives are the pixels where the sum is above 0.
    """
    height, width = size
    total = np.zeros((height, width))
    for xs, ys, other_size in others:
        rows, cols = _pixels(xs, ys, other_size, "other images' fixations")
        flat = _unique_flat(rows, cols, other_size[1])
        rows, cols = np.divmod(flat, other_size[1])
        if tuple(other_size) == (height, width):
            total[rows, cols] += 1.0
        else:  # resize the sparse binary map: one outer product per fixated pixel
            by = _resize_matrix(other_size[0], height)[:, rows]
            bx = _resize_matrix(other_size[1], width)[:, cols]
            total += by @ bx.T
    return total


# --------------------------------------------------------------------------- AUC family


def _min_max(smap: np.ndarray) -> np.ndarray | None:
    """``(map - min) / (max - min)``, or None for a constant map (MATLAB: all NaN)."""
    low, high = smap.min(), smap.max()
    if not high > low:
        return None
    return (smap - low) / (high - low)


def auc_judd(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    size: Size | None = None,
    jitter: float = JUDD_JITTER,
    rng: Seed = 0,
) -> float:
    """AUC-Judd as ``AUC_Judd.m``: its jitter and its rule for tied values.

    The map (resized to ``size``, the fixation map's, if given and different) gets
    ``jitter * uniform[0, 1)`` noise from ``rng`` (MIT's default ``jitter = 1`` adds
    ``rand / 1e7``; ``jitter=0`` turns it off) and is rescaled to [0, 1]. The ``N`` distinct
    fixated pixels' values, sorted decreasingly, are the thresholds; at the ``i``-th, ``t_i``,
    the true-positive rate is ``i / N`` and the false-positive rate
    ``(#{pixels >= t_i} - i) / (n_pixels - N)``. The trapezoidal rule integrates the curve from
    (0, 0) through these points to (1, 1).

    Tie rule: with ``N`` tied positives the ``i``-th still counts ``i`` hits, while the count of
    pixels ``>= t`` already holds all of them, so the curve runs backwards in FPR within a tie
    (a tied positive counts as a false alarm until its turn). Without ties this is the exact ROC
    area; the jitter exists to break ties at random. A constant map without jitter scores 0.5
    (MATLAB: NaN).
    """
    smap = _resized(sal, size)
    rows, cols = _pixels(xs, ys, smap.shape)
    if jitter:
        smap = smap + jitter * _rng(rng).random(smap.shape)
    scaled = _min_max(smap)
    if scaled is None:
        return 0.5
    flat = scaled.ravel()
    positives = np.sort(flat[_unique_flat(rows, cols, smap.shape[1])])[::-1]
    n_pos, n_pixels = positives.size, flat.size
    if n_pos == n_pixels:
        raise ValueError("every pixel is fixated: AUC-Judd needs at least one unfixated pixel")
    thresholds, inverse = np.unique(positives, return_inverse=True)
    below, _ = _count_below(flat, thresholds)
    at_or_above = n_pixels - below[inverse]
    hits = np.arange(1, n_pos + 1)
    tpr = np.concatenate(([0.0], hits / n_pos, [1.0]))
    fpr = np.concatenate(([0.0], (at_or_above - hits) / (n_pixels - n_pos), [1.0]))
    return _trapezoid(fpr, tpr)


def _check_grid(n_splits: int, step_size: float) -> None:
    if n_splits < 1:
        raise ValueError(f"n_splits must be at least 1, got {n_splits}")
    if not (math.isfinite(step_size) and 0 < step_size <= 1):
        raise ValueError(f"step_size must be in (0, 1], got {step_size}")


def auc_borji(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    size: Size | None = None,
    n_splits: int = 100,
    step_size: float = 0.1,
    rng: Seed = 0,
) -> float:
    """AUC-Borji as ``AUC_Borji.m``.

    The map (resized to ``size`` if given and different) is rescaled to [0, 1]. Positives: the
    ``N`` distinct fixated pixels. Each of ``n_splits`` splits draws ``N`` negatives uniformly,
    with replacement, from all pixels (``rng.integers``); thresholds are ``k * step_size``
    (``k = 0, 1, ...`` up to the split's maximum), TPR and FPR the fractions ``>= t``, and the
    curve from (0, 0) to (1, 1) is integrated with the trapezoidal rule. The score is the mean
    over splits. Its expectation over the draws is the same trapezoid with each FPR replaced by
    the fraction of all pixels ``>= t`` (the rule is linear in the FPR). A constant map scores
    0.5 (MATLAB: NaN).

    The grid points are ``k * step_size`` as numpy and Octave compute them; MATLAB's colon
    operator computes the upper half of the grid from its end, which can move a threshold by
    one unit in the last place and matters only for a value within that distance of it.
    """
    _check_grid(n_splits, step_size)
    smap = _resized(sal, size)
    rows, cols = _pixels(xs, ys, smap.shape)
    fixated = _unique_flat(rows, cols, smap.shape[1])
    sample = _rng(rng).integers(0, smap.size, size=(n_splits, fixated.size))
    scaled = _min_max(smap)
    if scaled is None:
        return 0.5
    flat = scaled.ravel()
    return float(_grid_auc(flat[fixated], flat[sample], step_size).mean())


def auc_shuffled(
    sal: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    other_map: npt.ArrayLike,
    *,
    size: Size | None = None,
    n_splits: int = 100,
    step_size: float = 0.1,
    rng: Seed = 0,
) -> float:
    """Shuffled AUC as ``AUC_shuffled.m``.

    ``other_map`` marks the negatives' locations (values above 0, e.g. :func:`shuffled_map` or
    :func:`fixation_map` of other images' fixations), in the fixation map's grid (``size``, or
    the map's own). The map (resized to ``size`` if given and different) is rescaled to [0, 1].
    Positives: the ``N`` distinct fixated pixels. Each of ``n_splits`` splits takes
    ``M = min(N, #locations)`` of the marked locations at random without replacement (a random
    permutation's first ``M``); thresholds ``k * step_size`` and the trapezoid as in
    :func:`auc_borji`, with FPR over the ``M`` negatives; the score is the mean over splits.
    Every location is drawn with probability ``M / #locations``, so the expectation is the
    trapezoid with each FPR replaced by the fraction of marked locations ``>= t``. A constant
    map scores 0.5 (MATLAB: NaN).
    """
    _check_grid(n_splits, step_size)
    smap = _resized(sal, size)
    rows, cols = _pixels(xs, ys, smap.shape)
    other = _as_map(other_map, "other_map")
    if other.shape != smap.shape:
        raise ValueError(
            f"other_map has shape {other.shape}, the fixation map {smap.shape}: "
            "mark the negatives in the fixation map's pixel grid"
        )
    locations = np.flatnonzero(other.ravel() > 0)
    if locations.size == 0:
        raise ValueError("other_map marks no location: sAUC needs other images' fixations")
    fixated = _unique_flat(rows, cols, smap.shape[1])
    n_neg = min(fixated.size, locations.size)
    generator = _rng(rng)
    sample = np.stack(
        [locations[generator.permutation(locations.size)[:n_neg]] for _ in range(n_splits)]
    )
    scaled = _min_max(smap)
    if scaled is None:
        return 0.5
    flat = scaled.ravel()
    return float(_grid_auc(flat[fixated], flat[sample], step_size).mean())


# --------------------------------------------------------------------------- other metrics


def nss(
    sal: npt.ArrayLike, xs: npt.ArrayLike, ys: npt.ArrayLike, *, size: Size | None = None
) -> float:
    """NSS as ``NSS.m``: the map standardized with the sample std, averaged over fixated pixels.

    The map (resized to ``size`` if given and different) becomes ``(map - mean) / std`` with
    MATLAB's ``std`` (``N - 1`` in the denominator); the score is its mean over the distinct
    fixated pixels (the binary fixation map: a pixel fixated twice counts once). A constant map
    scores 0 (MATLAB: NaN).
    """
    smap = _resized(sal, size)
    rows, cols = _pixels(xs, ys, smap.shape)
    if _is_constant(smap):
        return 0.0
    fixated = _unique_flat(rows, cols, smap.shape[1])
    standardized = (smap.ravel()[fixated] - smap.mean()) / smap.std(ddof=1)
    return float(standardized.mean())


def _to_reference(sal: npt.ArrayLike, ref_map: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The saliency map resized to the reference map's size (``imresize(map1, size(map2))``)."""
    ref = _as_map(ref_map, "reference map")
    return _resized(sal, ref.shape), ref


def cc(sal: npt.ArrayLike, ref_map: npt.ArrayLike) -> float:
    """CC as ``CC.m``: Pearson's correlation after resizing the map to the reference's size.

    The same value as the pysaliency convention on maps of equal size. A constant map scores 0
    (MATLAB: NaN).
    """
    return _cc(*_to_reference(sal, ref_map))


def _sum_normalized(smap: np.ndarray) -> np.ndarray:
    """Divided by its sum unless it is all zeros (which MIT keeps as it is)."""
    return smap / smap.sum() if smap.any() else smap


def kl_div(sal: npt.ArrayLike, ref_map: npt.ArrayLike, eps: float = MATLAB_EPS) -> float:
    """KL divergence as ``KLdiv.m``, KL(reference || map) in nats.

    The map is resized to the reference's size; each map is divided by its sum (an all-zero map
    stays zero), with no shift of negative values; the score is
    ``sum(q * log(eps + q / (p + eps)))`` with MATLAB's ``eps = 2^-52``, ``q`` the reference
    and ``p`` the map. Negative input values raise :class:`ValueError` (MATLAB's logarithm would
    turn complex); the small negative overshoot of bicubic resizing is set to 0.
    """
    p_map, q_map = _to_reference(sal, ref_map)
    for arr, name in ((sal, "saliency map"), (q_map, "reference map")):
        if np.min(arr) < 0:
            raise ValueError(
                f"{name} has negative values: the MIT KL divergence is defined for maps >= 0"
            )
    p = _sum_normalized(np.maximum(p_map, 0.0))
    q = _sum_normalized(q_map)
    return float(np.sum(q * np.log(eps + q / (p + eps))))


def _unit_distribution(smap: np.ndarray) -> np.ndarray:
    """Rescaled to [0, 1], then divided by its sum, as ``similarity.m`` and ``InfoGain.m`` do.

    An all-zero map stays zero; another constant map (MATLAB: NaN) becomes uniform.
    """
    if not smap.any():
        return smap
    scaled = _min_max(smap)
    if scaled is None:
        return np.full(smap.shape, 1.0 / smap.size)
    return scaled / scaled.sum()


def sim(sal: npt.ArrayLike, ref_map: npt.ArrayLike) -> float:
    """SIM as ``similarity.m``: histogram intersection after rescaling each map to [0, 1].

    The map is resized to the reference's size; each map is rescaled to [0, 1] (its minimum
    goes to 0, even for a positive map) and divided by its sum; the score is ``sum(min(p, q))``.
    The rescaling removes any floor above zero, which the pysaliency convention keeps.
    """
    p_map, q_map = _to_reference(sal, ref_map)
    return float(np.minimum(_unit_distribution(p_map), _unit_distribution(q_map)).sum())


def information_gain(
    sal: npt.ArrayLike,
    baseline: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    size: Size | None = None,
) -> float:
    """Information gain over a baseline map as ``InfoGain.m``, in bits per fixated pixel.

    Both maps (resized to ``size`` if given and different) are rescaled to [0, 1] and divided by
    their sums; the score is the mean over the distinct fixated pixels of
    ``log2(eps + p) - log2(eps + b)``. Unlike the pysaliency convention the inputs are saliency
    maps, not log-densities, each map's minimum pixel gets probability 0, and a pixel fixated
    twice counts once.
    """
    smap = _resized(sal, size)
    base = _resized(baseline, smap.shape, "baseline map")
    rows, cols = _pixels(xs, ys, smap.shape)
    fixated = _unique_flat(rows, cols, smap.shape[1])
    p = _unit_distribution(smap).ravel()[fixated]
    b = _unit_distribution(base).ravel()[fixated]
    return float(np.mean(np.log2(MATLAB_EPS + p) - np.log2(MATLAB_EPS + b)))


# --------------------------------------------------------------------------- all metrics


def evaluate_map(
    prediction: npt.ArrayLike,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    size: Size | None = None,
    mode: Literal["map", "probabilistic"] = "map",
    ref_map: npt.ArrayLike | None = None,
    sigma_px: float | None = None,
    other_map: npt.ArrayLike | None = None,
    baseline_log_density: npt.ArrayLike | None = None,
    shuffled_log_density: npt.ArrayLike | None = None,
    n_splits: int = 100,
    rng: Seed = 0,
) -> dict[str, float]:
    """Every metric for one image under the MIT convention, keyed as
    :func:`salience.evaluation.metrics.evaluate_map`.

    ``mode='map'``: ``prediction`` is a saliency map. It is divided by its largest absolute
    value first, as if it were an image in [0, 1] (the MIT benchmark's input): no metric depends
    on that scale except AUC-Judd, whose jitter has a fixed amplitude (1e-7). A map of another
    size than ``size`` (the fixations' image, default: the map's own) is resized by each metric,
    as the MIT code does. ``mode='probabilistic'``: ``prediction`` is a log-density ``log p`` of
    the image's size, and each metric scores the map that the pysaliency convention finds
    optimal for it: ``p`` for AUC-Judd, AUC-Borji and NSS, ``p / b`` for sAUC (``b`` from
    ``shuffled_log_density``, or ``p`` itself without it), ``p`` blurred with
    :func:`antonio_blur` for CC, KL and SIM (about the expected reference map). Those maps are
    optimal for exact ROC curves and counted fixations; under MIT's thresholds and binary maps
    they are close to optimal, not exactly. ``log_likelihood`` (no MIT counterpart: the
    pysaliency definition) and ``information_gain`` (:func:`information_gain` of ``p`` over
    ``b`` from ``baseline_log_density``, uniform when None) are added.

    CC, KL and SIM compare with ``ref_map``, built by :func:`reference_map` from ``sigma_px``
    when None; with neither they are left out. sAUC needs ``other_map`` (:func:`shuffled_map`,
    in the grid of ``size``) and is left out without it. The random parts draw from ``rng`` in a
    fixed order: AUC-Judd's jitter, AUC-Borji's negatives, sAUC's negatives.
    """
    generator = _rng(rng)
    if mode == "map":
        smap = _as_map(prediction, "saliency map")
        scale = np.abs(smap).max()
        point_map = smap / scale if scale > 0 else smap
        shuffled = compared = point_map
        size = point_map.shape if size is None else (int(size[0]), int(size[1]))
    elif mode == "probabilistic":
        logp = _as_log_density(prediction, "log_density")
        if size is not None and tuple(size) != logp.shape:
            raise ValueError(f"log_density has shape {logp.shape}, the image is {tuple(size)}")
        size = logp.shape
        point_map = shuffled = np.exp(logp)
        if shuffled_log_density is not None:
            logb = _as_log_density(shuffled_log_density, "shuffled_log_density")
            with np.errstate(invalid="ignore"):
                shuffled = np.exp(logp - logb)
            shuffled[np.isneginf(logp) & np.isneginf(logb)] = 0.0
        if sigma_px is None and ref_map is not None:
            raise ValueError("probabilistic mode needs sigma_px to build the CC/KL/SIM map")
        compared = None if sigma_px is None else antonio_blur(point_map, sigma_px)
    else:
        raise ValueError(f"mode must be 'map' or 'probabilistic', got {mode!r}")
    results = {
        "auc_judd": auc_judd(point_map, xs, ys, size=size, rng=generator),
        "auc_borji": auc_borji(point_map, xs, ys, size=size, n_splits=n_splits, rng=generator),
        "nss": nss(point_map, xs, ys, size=size),
    }
    if other_map is not None:
        results["auc_shuffled"] = auc_shuffled(
            shuffled, xs, ys, other_map, size=size, n_splits=n_splits, rng=generator
        )
    if ref_map is None and sigma_px is not None:
        ref_map = reference_map(xs, ys, size, sigma_px)
    if ref_map is not None and compared is not None:
        results["cc"] = cc(compared, ref_map)
        results["kl_div"] = kl_div(compared, ref_map)
        results["sim"] = sim(compared, ref_map)
    if mode == "probabilistic":
        if baseline_log_density is None:
            baseline = np.ones(size)
        else:
            baseline = np.exp(_as_log_density(baseline_log_density, "baseline_log_density"))
        results["log_likelihood"] = log_likelihood(logp, xs, ys)
        results["information_gain"] = information_gain(point_map, baseline, xs, ys)
    return results
