"""The MIT benchmark's metric convention (salience.evaluation.mit) against values worked out by
hand.

Each hand case is one where the MIT definition and the pysaliency convention give different
numbers (ties, repeated fixations, maps with a floor above zero, maps of another size, grid
thresholds), and the test checks both. The random metrics (AUC-Borji, sAUC, AUC-Judd's jitter)
are checked against the exact expectation of MIT's estimator: the trapezoid rule is linear in
the false-positive rates, so the expected area is the trapezoid through the expected rates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from salience.evaluation import metrics, mit

# Keys' cubic kernel (a = -0.5) at the distances that resizing by 2 and by 1/2 needs.
K025, K075, K125, K175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


def _trapezoid(x: list[float], y: list[float]) -> float:
    return sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1))


def _grid_expectation(values: np.ndarray, positives: np.ndarray, negatives_pool: np.ndarray):
    """Exact expected grid AUC: negatives drawn uniformly from ``negatives_pool`` (MIT's FPR at
    each threshold replaced by its expectation, the fraction of the pool >= t)."""
    low, high = values.min(), values.max()
    pos = (positives - low) / (high - low)
    pool = (negatives_pool - low) / (high - low)
    thresholds = np.arange(10, -1, -1) * 0.1
    tpr = [0.0] + [float(np.mean(pos >= t)) for t in thresholds] + [1.0]
    fpr = [0.0] + [float(np.mean(pool >= t)) for t in thresholds] + [1.0]
    return _trapezoid(fpr, tpr)


# --------------------------------------------------------------------------- resizing


def test_imresize_doubles_with_the_bicubic_kernel_and_mirrored_borders() -> None:
    # Output pixel 1 samples input position 0.75: weights K175, K075, K025, K125 on input
    # positions -1, 0, 1, 2, which mirror to 2, 1, 1, 2 (values 1, 0, 0, 1).
    first = K175 + K125
    second = K075 + K175  # position 1.25: inputs 0, 1, 2, 3 -> 1, 1, 2, 2 (values 0, 0, 1, 1)
    expected = [first, second, 1 - second, 1 - first]
    assert expected == pytest.approx([-0.09375, 0.203125, 0.796875, 1.09375], abs=0)
    np.testing.assert_allclose(mit.imresize([[0.0, 1.0]], (1, 4)), [expected], atol=1e-15)


def test_imresize_halves_with_an_antialiasing_kernel() -> None:
    # Shrinking by 2 widens the kernel to 8 and halves it: weights 0.5 * cubic(d / 2). The
    # value 1 at input 4 reaches output 1 from position 4 (d = -2.5) and its mirror 5
    # (d = -3.5), output 2 from 4 (d = -0.5) and 5 (d = -1.5).
    expected = [0.5 * (K125 + K175), 0.5 * (K025 + K075)]
    np.testing.assert_allclose(mit.imresize([[0.0, 0.0, 0.0, 1.0]], (1, 2)), [expected], atol=1e-15)


def test_imresize_keeps_constants_and_same_size_maps() -> None:
    np.testing.assert_allclose(mit.imresize(np.full((5, 7), 0.3), (11, 3)), 0.3, rtol=1e-14)
    a = np.random.default_rng(0).random((6, 9))
    np.testing.assert_array_equal(mit.imresize(a, (6, 9)), a)
    with pytest.raises(ValueError, match="2-D"):
        mit.imresize(np.zeros(4), (2, 2))


# --------------------------------------------------------------------------- reference maps


def test_antonio_blur_is_a_wider_gaussian_with_zero_borders() -> None:
    """MIT's cut-off is relative to the longer side, applied on a power-of-two grid: the
    spatial sigma is sigma * n / max(h, w), and mass near the border is lost, not reflected."""
    image = np.zeros((48, 40))
    image[20, 25] = 1.0
    image[2, 3] = 1.0
    blurred = mit.antonio_blur(image, 4.0)
    effective = 4.0 * 64 / 48
    spatial = gaussian_filter(image, effective, mode="constant", truncate=10)
    np.testing.assert_allclose(blurred, spatial, atol=1e-12)
    assert blurred.sum() < 1.9  # the corner fixation's mass leaves the image


def _antonio_by_fft(image: np.ndarray, sigma: float) -> np.ndarray:
    """The MIT blur done literally: zero-pad into 2n x 2n, multiply the 2-D spectrum, crop."""
    height, width = image.shape
    longest = max(height, width)
    cutoff = longest * math.sqrt(math.log(2) / (2 * math.pi**2 * sigma**2))
    n = 2 ** math.ceil(math.log2(longest + longest % 2))
    padded = np.zeros((2 * n, 2 * n))
    padded[n : n + height, n : n + width] = image
    f = np.arange(n) - n / 2
    transfer = np.zeros((2 * n, 2 * n))
    transfer[n // 2 : 3 * n // 2, n // 2 : 3 * n // 2] = np.exp(
        -(f[:, None] ** 2 + f[None, :] ** 2) / (2 * cutoff / math.sqrt(math.log(2))) ** 2
    )
    blurred = np.fft.ifft2(np.fft.fft2(padded) * np.fft.fftshift(transfer)).real
    return blurred[n : n + height, n : n + width]


@pytest.mark.parametrize(("shape", "sigma"), [((48, 40), 1.5), ((37, 91), 6.0), ((64, 64), 3.0)])
def test_antonio_blur_is_the_padded_fft_filter(shape: tuple[int, int], sigma: float) -> None:
    image = np.random.default_rng(0).random(shape)
    expected = _antonio_by_fft(image, sigma)
    np.testing.assert_allclose(mit.antonio_blur(image, sigma), expected, atol=1e-14)


def test_reference_map_counts_a_fixated_pixel_once() -> None:
    xs, ys = [5.2, 5.7, 20.0], [4.1, 4.9, 10.0]  # the first two share a pixel
    ref = mit.reference_map(xs, ys, (24, 32), 2.0)
    np.testing.assert_allclose(ref, mit.reference_map(xs[1:], ys[1:], (24, 32), 2.0), atol=0)
    assert (ref >= 0).all()
    counted = metrics.empirical_density(xs, ys, (24, 32), 2.0)
    assert counted[4, 5] > counted[10, 20] * 1.9  # salience's reference counts both fixations
    assert ref[4, 5] == pytest.approx(ref[10, 20], rel=1e-6)


# --------------------------------------------------------------------------- AUC-Judd

# 2x3 map: fixations on 0.9 and two of the three 0.5 pixels (one of them twice)
JUDD_MAP = np.array([[0.9, 0.5, 0.5], [0.5, 0.2, 0.1]])
JUDD_XS, JUDD_YS = [0.5, 1.5, 1.2, 2.5], [0.5, 0.5, 0.7, 0.5]


def test_auc_judd_tie_rule() -> None:
    # MIT: thresholds 0.9, 0.5, 0.5; #pixels >= t: 1, 4, 4; TPR i/3, FPR (count - i)/3:
    # (0, 0), (0, 1/3), (2/3, 2/3), (1/3, 1), (1, 1): the curve runs back within the tie.
    mit_area = _trapezoid([0, 0, 2 / 3, 1 / 3, 1], [0, 1 / 3, 2 / 3, 1, 1])
    assert mit_area == pytest.approx(13 / 18)
    # pysaliency convention: tied positives pass together: (0, 0), (0, 1/3), (1/3, 1), (1, 1)
    assert metrics.auc_judd(JUDD_MAP, JUDD_XS, JUDD_YS) == pytest.approx(8 / 9, rel=1e-15)
    assert mit.auc_judd(JUDD_MAP, JUDD_XS, JUDD_YS, jitter=0) == pytest.approx(13 / 18, rel=1e-15)
    assert metrics.auc_judd(
        JUDD_MAP, JUDD_XS, JUDD_YS, jitter=0, convention="mit"
    ) == pytest.approx(13 / 18, rel=1e-15)


def test_auc_judd_jitter_breaks_ties_at_random() -> None:
    # Jitter orders the tie (positives a, b and negative c at 0.5) at random; r = 0, 1, 2
    # positives end above c, each with probability 1/3. Thresholds sit at the positives only,
    # so a negative between two of them makes a diagonal segment:
    #   r = 0: (0, 0) (0, 1/3) (1/3, 2/3) (1/3, 1) (1, 1)
    #   r = 1: (0, 0) (0, 1/3) (0, 2/3) (1/3, 1) (1, 1)
    #   r = 2: (0, 0) (0, 1/3) (0, 2/3) (0, 1) (1, 1)
    areas = [
        _trapezoid([0, 0, 1 / 3, 1 / 3, 1], [0, 1 / 3, 2 / 3, 1, 1]),
        _trapezoid([0, 0, 0, 1 / 3, 1], [0, 1 / 3, 2 / 3, 1, 1]),
        _trapezoid([0, 0, 0, 0, 1], [0, 1 / 3, 2 / 3, 1, 1]),
    ]
    assert areas == pytest.approx([15 / 18, 17 / 18, 1.0])
    scores = [mit.auc_judd(JUDD_MAP, JUDD_XS, JUDD_YS, rng=seed) for seed in range(300)]
    assert {round(18 * s, 9) for s in scores} == {15.0, 17.0, 18.0}
    expectation, spread = np.mean(areas), np.std(areas) / math.sqrt(len(scores))
    assert abs(np.mean(scores) - expectation) < 4 * spread
    assert mit.auc_judd(JUDD_MAP, JUDD_XS, JUDD_YS, rng=3) == mit.auc_judd(
        JUDD_MAP, JUDD_XS, JUDD_YS, rng=3
    )


def test_auc_judd_without_ties_agrees_between_conventions() -> None:
    rng = np.random.default_rng(1)
    sal = rng.random((20, 30))
    xs, ys = rng.random(40) * 30, rng.random(40) * 20
    assert mit.auc_judd(sal, xs, ys, jitter=0) == pytest.approx(
        metrics.auc_judd(sal, xs, ys), rel=1e-13
    )


# --------------------------------------------------------------------------- AUC-Borji, sAUC

# 1x5 map; fixations on the 1.0 and the 0.05 pixel. All other pixels lie below 0.1.
GRID_MAP = np.array([[1.0, 0.05, 0.04, 0.03, 0.0]])
GRID_XS, GRID_YS = [0.5, 1.5], [0.5, 0.5]


def test_auc_borji_splits_by_hand() -> None:
    # Thresholds 1.0 ... 0.1 pass the 1.0 pixel only: TPR 1/2 and FPR f (the share of the two
    # negatives drawn on pixel 0); threshold 0 passes everything. Area: f/4 + (1 - f) * 3/4.
    n_splits = 50
    draws = np.random.default_rng(7).integers(0, 5, size=(n_splits, 2))
    f = (draws == 0).mean(axis=1)
    by_hand = float(np.mean(0.75 - 0.5 * f))
    assert mit.auc_borji(GRID_MAP, GRID_XS, GRID_YS, n_splits=n_splits, rng=7) == pytest.approx(
        by_hand, rel=1e-14
    )
    assert metrics.auc_borji(
        GRID_MAP, GRID_XS, GRID_YS, n_splits, rng=7, convention="mit"
    ) == pytest.approx(by_hand, rel=1e-14)


def test_auc_borji_mean_over_seeds_is_the_exact_expectation() -> None:
    # On GRID_MAP: E[f] = 1/5, so 0.75 - 0.1 = 0.65, where the exact ROC expects 0.8.
    assert _grid_expectation(GRID_MAP, GRID_MAP[0, :2], GRID_MAP.ravel()) == pytest.approx(0.65)
    rng = np.random.default_rng(2)
    sal = np.round(rng.random((12, 16)) ** 3, 2)  # skewed, with ties
    xs, ys = rng.random(25) * 16, rng.random(25) * 12
    rows, cols = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fixated = np.unique(rows * 16 + cols)
    expected = _grid_expectation(sal, sal.ravel()[fixated], sal.ravel())
    means = [mit.auc_borji(sal, xs, ys, n_splits=20, rng=seed) for seed in range(200)]
    standard_error = np.std(means, ddof=1) / math.sqrt(len(means))
    assert abs(np.mean(means) - expected) < 4 * standard_error
    for grid_map_seed in range(3):
        assert abs(
            mit.auc_borji(GRID_MAP, GRID_XS, GRID_YS, n_splits=4000, rng=grid_map_seed) - 0.65
        ) < 5 * math.sqrt(0.02 / 4000)


def test_auc_shuffled_by_hand() -> None:
    # Negatives at the 0.04 and 0.0 pixels (two locations, two fixated pixels: every split
    # takes both). Thresholds >= 0.1: TPR 1/2, FPR 0; threshold 0: (1, 1). Area 3/4, where the
    # exact ROC (both positives above both negatives) gives 1.
    other = np.array([[0, 0, 1, 0, 2]])
    assert mit.auc_shuffled(GRID_MAP, GRID_XS, GRID_YS, other) == pytest.approx(0.75, rel=1e-15)
    # No more locations than fixated pixels: every split takes each location exactly once.
    # Negatives 1.0 and 0.04: FPR 1/2 at thresholds >= 0.1, so (0, 0) (1/2, 1/2) (1, 1).
    for seed in range(5):
        assert mit.auc_shuffled(GRID_MAP, GRID_XS, GRID_YS, [[1, 0, 1, 0, 0]], rng=seed) == 0.5
    # One location for two positives: M = 1 negative per split, (0, 0) (1, 1/2) (1, 1)
    assert mit.auc_shuffled(GRID_MAP, GRID_XS, GRID_YS, [[1, 0, 0, 0, 0]]) == 0.25
    ox, oy = [2.5, 4.2, 4.7], [0.5, 0.5, 0.5]  # the last two share a pixel
    assert metrics.auc_shuffled(GRID_MAP, GRID_XS, GRID_YS, ox, oy) == 1.0
    assert metrics.auc_shuffled(
        GRID_MAP, GRID_XS, GRID_YS, ox, oy, convention="mit"
    ) == pytest.approx(0.75, rel=1e-15)


def test_auc_shuffled_mean_over_seeds_is_the_exact_expectation() -> None:
    rng = np.random.default_rng(3)
    sal = rng.random((12, 16)) ** 2
    xs, ys = rng.random(10) * 16, rng.random(10) * 12
    other = (rng.random((12, 16)) < 0.4).astype(float)  # ~77 locations for <= 10 positives
    rows, cols = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fixated = np.unique(rows * 16 + cols)
    pool = sal.ravel()[other.ravel() > 0]
    expected = _grid_expectation(sal, sal.ravel()[fixated], pool)
    means = [mit.auc_shuffled(sal, xs, ys, other, n_splits=20, rng=seed) for seed in range(200)]
    standard_error = np.std(means, ddof=1) / math.sqrt(len(means))
    assert abs(np.mean(means) - expected) < 4 * standard_error
    with pytest.raises(ValueError, match="no location"):
        mit.auc_shuffled(sal, xs, ys, np.zeros((12, 16)))
    with pytest.raises(ValueError, match="pixel grid"):
        mit.auc_shuffled(sal, xs, ys, np.ones((6, 8)))


def test_shuffled_map_resizes_other_images_fixation_maps() -> None:
    same = mit.shuffled_map([([1.5, 1.7], [0.5, 0.5], (4, 4)), ([3.0], [2.0], (4, 4))], (4, 4))
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[2, 3] = 1  # a pixel fixated twice in one image counts once
    np.testing.assert_array_equal(same, expected)
    # A 1x2 image fixated on its right pixel, resized to 1x4: the bicubic image of [0, 1]
    bigger = mit.shuffled_map([([1.5], [0.5], (1, 2))], (1, 4))
    np.testing.assert_allclose(bigger, mit.imresize([[0.0, 1.0]], (1, 4)), atol=1e-15)
    assert ((bigger > 0) == [[False, True, True, True]]).all()


# --------------------------------------------------------------------------- NSS


def test_nss_binary_map_and_sample_std() -> None:
    sal = np.array([[0.0, 1.0, 2.0, 5.0]])
    xs, ys = [3.5, 3.2, 1.5], [0.5, 0.5, 0.5]  # pixel 3 twice, pixel 1 once
    # MIT: mean 2, sample std sqrt(14 / 3); distinct pixels 1 and 3: (-1 + 3) / 2 / std
    assert mit.nss(sal, xs, ys) == pytest.approx(math.sqrt(3 / 14), rel=1e-14)
    assert metrics.nss(sal, xs, ys, convention="mit") == pytest.approx(math.sqrt(3 / 14))
    # pysaliency: population std sqrt(3.5), every fixation: (11/3 - 2) / sqrt(3.5)
    assert metrics.nss(sal, xs, ys) == pytest.approx((5 / 3) / math.sqrt(3.5), rel=1e-14)


def test_nss_resizes_the_map_to_the_fixation_map() -> None:
    resized = np.array([-0.09375, 0.203125, 0.796875, 1.09375])  # [0, 1] to 1x4, by hand above
    by_hand = (resized[3] - resized.mean()) / resized.std(ddof=1)
    assert mit.nss([[0.0, 1.0]], [3.5], [0.5], size=(1, 4)) == pytest.approx(by_hand, rel=1e-13)
    with pytest.raises(ValueError, match="outside"):
        mit.nss([[0.0, 1.0]], [3.5], [0.5])  # without the size the fixation is off the map


# --------------------------------------------------------------------------- CC, KL, SIM, IG


def test_sim_removes_a_floor_above_zero() -> None:
    sal = np.array([[2.0, 3.0], [3.0, 4.0]])
    ref = np.array([[0.0, 1.0], [1.0, 2.0]])
    # MIT: both become [0, 1/4, 1/4, 1/2]: identical. pysaliency: [1/6, 1/4, 1/4, 1/3] vs
    # [0, 1/4, 1/4, 1/2]: 1/4 + 1/4 + 1/3.
    assert mit.sim(sal, ref) == pytest.approx(1.0, rel=1e-15)
    assert metrics.sim(sal, ref, convention="mit") == pytest.approx(1.0, rel=1e-15)
    assert metrics.sim(sal, ref) == pytest.approx(5 / 6, rel=1e-15)


def test_kl_uses_matlab_eps_and_keeps_zero_maps() -> None:
    eps = 2.0**-52
    sal, ref = np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])
    by_hand = 0.5 * math.log(eps + 0.5 / eps) + 0.5 * math.log(eps + 0.5 / (1 + eps))
    assert mit.kl_div(sal, ref) == pytest.approx(by_hand, rel=1e-14)
    assert metrics.kl_div(sal, ref, convention="mit") == pytest.approx(by_hand, rel=1e-14)
    pys = 0.5 * math.log(2.2204e-16 + 0.5 / 2.2204e-16) + 0.5 * math.log(
        2.2204e-16 + 0.5 / (1 + 2.2204e-16)
    )
    assert metrics.kl_div(sal, ref) == pytest.approx(pys, rel=1e-14)
    assert abs(by_hand - pys) > 1e-6
    # an all-zero map: MIT keeps it zero (every q pays log(q / eps)); pysaliency makes it uniform
    zero = np.zeros((1, 2))
    assert mit.kl_div(zero, ref) == pytest.approx(math.log(eps + 0.5 / eps), rel=1e-14)
    assert metrics.kl_div(zero, ref) == pytest.approx(0.0, abs=1e-14)
    with pytest.raises(ValueError, match="negative"):
        mit.kl_div(np.array([[-1.0, 1.0]]), ref)


def test_cc_and_kl_resize_the_map_to_the_reference() -> None:
    resized = np.array([-0.09375, 0.203125, 0.796875, 1.09375])
    ref = np.array([[1.0, 2.0, 3.0, 5.0]])
    assert mit.cc([[0.0, 1.0]], ref) == pytest.approx(np.corrcoef(resized, ref[0])[0, 1])
    p = np.maximum(resized, 0) / np.maximum(resized, 0).sum()  # the overshoot below 0 is cut
    q = ref[0] / ref.sum()
    eps = 2.0**-52
    assert mit.kl_div([[0.0, 1.0]], ref) == pytest.approx(
        float(np.sum(q * np.log(eps + q / (p + eps)))), rel=1e-13
    )
    with pytest.raises(ValueError, match="different shapes"):
        metrics.cc([[0.0, 1.0]], ref)  # the pysaliency convention does not resize


def test_information_gain_as_infogain() -> None:
    sal = np.array([[1.0, 2.0], [3.0, 4.0]])
    base = np.array([[1.0, 1.0], [1.0, 2.0]])
    xs, ys = [1.5, 1.5, 1.2], [1.5, 0.5, 0.2]  # pixel (0, 1) twice
    eps = 2.0**-52
    # rescaled and normalized: p = [0, 1/6, 1/3, 1/2], b = [0, 0, 0, 1]
    by_hand = np.mean(
        [math.log2(eps + 1 / 2) - math.log2(eps + 1), math.log2(eps + 1 / 6) - math.log2(eps)]
    )
    assert mit.information_gain(sal, base, xs, ys) == pytest.approx(by_hand, rel=1e-14)
    logp, logb = np.log(sal / sal.sum()), np.log(base / base.sum())
    assert metrics.information_gain(logp, logb, xs, ys, convention="mit") == pytest.approx(
        by_hand, rel=1e-12
    )
    pys = np.mean((logp - logb)[[1, 0, 0], [1, 1, 1]]) / math.log(2)
    assert metrics.information_gain(logp, logb, xs, ys) == pytest.approx(pys, rel=1e-12)


def test_constant_maps_score_chance_where_matlab_gives_nan() -> None:
    flat = np.full((4, 5), 0.3)
    xs, ys = [1.5, 3.2], [2.0, 0.5]
    assert mit.auc_judd(flat, xs, ys, jitter=0) == 0.5
    assert mit.auc_borji(flat, xs, ys) == 0.5
    assert mit.nss(flat, xs, ys) == 0.0
    ref = mit.reference_map(xs, ys, (4, 5), 1.0)
    assert mit.cc(flat, ref) == 0.0
    # SIM: the constant map counts as uniform, against the reference rescaled to [0, 1]
    unit = (ref - ref.min()) / (ref.max() - ref.min())
    assert mit.sim(flat, ref) == pytest.approx(np.minimum(1 / 20, unit / unit.sum()).sum())


# --------------------------------------------------------------------------- evaluation


def test_evaluate_map_shares_one_generator_in_a_fixed_order() -> None:
    rng = np.random.default_rng(4)
    sal = rng.random((30, 40)) ** 4
    xs, ys = rng.random(30) * 40, rng.random(30) * 30
    other = mit.fixation_map(rng.random(60) * 40, rng.random(60) * 30, (30, 40))
    result = mit.evaluate_map(sal, xs, ys, sigma_px=3.0, other_map=other, rng=9)
    g = np.random.default_rng(9)
    scaled = sal / sal.max()
    ref = mit.reference_map(xs, ys, (30, 40), 3.0)
    expected = {
        "auc_judd": mit.auc_judd(scaled, xs, ys, rng=g),
        "auc_borji": mit.auc_borji(scaled, xs, ys, rng=g),
        "nss": mit.nss(sal, xs, ys),
        "auc_shuffled": mit.auc_shuffled(sal, xs, ys, other, rng=g),
        "cc": mit.cc(sal, ref),
        "kl_div": mit.kl_div(sal, ref),
        "sim": mit.sim(sal, ref),
    }
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=1e-12), key
    ox, oy = np.nonzero(other)[1] + 0.5, np.nonzero(other)[0] + 0.5
    dispatched = metrics.evaluate_map(
        sal, xs, ys, sigma_px=3.0, other_xs=ox, other_ys=oy, rng=9, convention="mit"
    )
    assert dispatched == result
    with pytest.raises(ValueError, match="convention"):
        metrics.nss(sal, xs, ys, convention="matlab")


def test_evaluate_resizes_prediction_files_inside_the_mit_metrics(osie, tmp_path: Path) -> None:
    from salience.evaluation.evaluate import evaluate
    from salience.models.registry import create_model

    data = osie.subset(osie.split("val").ids[:3])
    uniform = create_model("uniform")
    yy, xx = np.mgrid[0:60, 0:80]
    small = np.exp(-(((xx - 40) / 20) ** 2 + ((yy - 30) / 15) ** 2))
    for stim in data:
        np.save(tmp_path / f"{stim.id}.npy", small)
    result = evaluate(
        None, data, center_bias=uniform, mode="map", predictions=tmp_path, convention="mit"
    )
    assert result.convention == "mit" and result.to_dict()["convention"] == "mit"
    for stim in data:
        xs, ys = stim.fixations()
        row = result.per_image[stim.id]
        assert row["NSS"] == pytest.approx(mit.nss(small, xs, ys, size=stim.size), rel=1e-12)
        ref = mit.reference_map(xs, ys, stim.size, data.ppd(stim))
        assert row["CC"] == pytest.approx(mit.cc(small, ref), rel=1e-12)
        assert row["SIM"] == pytest.approx(mit.sim(small, ref), rel=1e-12)
        # a central map: above chance against uniform negatives, near it against shuffled ones
        assert row["AUC-Borji"] > 0.6 and abs(row["sAUC"] - 0.5) < 0.1


def test_cli_eval_records_the_convention(osie_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from salience.cli import app

    root = tmp_path / "osie"
    root.mkdir()
    for name in ("eye", "stimuli"):
        (root / name).symlink_to(osie_root / name)
    split = json.loads((osie_root / "split.json").read_text())
    (root / "split.json").write_text(
        json.dumps({"train": split["train"][:20], "val": split["val"][:3]})
    )
    out = tmp_path / "mit.json"
    base = ["eval", "--dataset", "osie", "--root", str(root), "-m", "uniform", "--mode", "map"]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--convention", "mit", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mit metrics" in result.output
    data = json.loads(out.read_text())
    assert data["convention"] == "mit" and data["results"][0]["convention"] == "mit"
    assert data["explainable_information_gain_percent"] == {"uniform": None}
    header, row = out.with_suffix(".csv").read_text().splitlines()
    assert header.split(",")[3] == "convention" and row.split(",")[3] == "mit"
    bad = runner.invoke(app, [*base, "--convention", "matlab"])
    assert bad.exit_code == 2 and "--convention" in bad.output
