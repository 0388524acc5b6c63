"""Tests of salience.evaluation.metrics against pysaliency 0.2.22, brute-force definitions and
invariances.

Real data: five OSIE validation images with all observers' fixations, scored with five maps per
image that exercise different code paths (smooth and tied values, exact zeros, negative values).
Where our convention deliberately differs from pysaliency (AUC-Judd counts a fixated pixel once,
AUC-Borji samples negatives), the test compares with a direct, loop-based implementation of the
documented definition instead, or with pysaliency on input where both definitions coincide.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import scipy.io
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.stats import rankdata

from salience.evaluation import metrics

SIZE = (600, 800)  # OSIE images: height, width
SIGMA = 24.0  # 1 degree of visual angle on OSIE, in pixels
N_IMAGES = 5
MAP_KINDS = ("center_bias", "empirical_loo", "intensity", "quantized", "random_smooth")
RTOL, ATOL = 1e-9, 1e-12  # far tighter than the 1e-6 we promise

# pysaliency imports pkg_resources, deprecated in the setuptools we pin for it.
pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:DeprecationWarning")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pysaliency() -> ModuleType:
    """pysaliency, importable under numpy 2 (it still calls ``np.trapz``) for this module only."""
    with pytest.MonkeyPatch.context() as mp:
        if not hasattr(np, "trapz"):
            mp.setattr(np, "trapz", np.trapezoid, raising=False)
        yield importlib.import_module("pysaliency")


class OsieSubset:
    """Fixations (0-based, observer index) and images of the first validation images."""

    def __init__(self, root: Path, n_images: int) -> None:
        ids = json.loads((root / "split.json").read_text())["val"][:n_images]
        cells = scipy.io.loadmat(
            root / "eye" / "fixations.mat", squeeze_me=True, struct_as_record=False
        )["fixations"]
        by_id = {Path(str(c.img)).stem: c for c in cells}
        self.ids = ids
        self.xs, self.ys, self.obs = [], [], []
        for image_id in ids:
            xs, ys, obs = [], [], []
            for k, subject in enumerate(by_id[image_id].subjects):
                x = np.atleast_1d(subject.fix_x).astype(np.float64) - 1.0
                xs.append(x)
                ys.append(np.atleast_1d(subject.fix_y).astype(np.float64) - 1.0)
                obs.append(np.full(x.size, k))
            self.xs.append(np.concatenate(xs))
            self.ys.append(np.concatenate(ys))
            self.obs.append(np.concatenate(obs))
        self.gray = [
            np.asarray(Image.open(root / "stimuli" / f"{i}.jpg").convert("L"), dtype=np.float64)
            for i in ids
        ]

    def others(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Fixations of the other images of the subset: the shuffled-AUC negatives of image n."""
        keep = [k for k in range(len(self.ids)) if k != n]
        xs = np.concatenate([self.xs[k] for k in keep])
        return xs, np.concatenate([self.ys[k] for k in keep])


@pytest.fixture(scope="module")
def data(osie_root: Path) -> OsieSubset:
    return OsieSubset(osie_root, N_IMAGES)


def _make_map(kind: str, data: OsieSubset, n: int) -> np.ndarray:
    if kind == "center_bias":  # mirror-symmetric: many exactly tied values
        return metrics.center_bias_density(SIZE, 0.2, 0.2)
    if kind == "empirical_loo":  # observer 0 left out; exact zeros far from all fixations
        keep = data.obs[n] != 0
        return metrics.empirical_density(data.xs[n][keep], data.ys[n][keep], SIZE, SIGMA)
    if kind == "intensity":
        return gaussian_filter(data.gray[n], 8.0)
    if kind == "quantized":  # 8 grey levels: ties everywhere, fixations included
        return np.floor(data.gray[n] / 32.0)
    rng = np.random.default_rng(n)  # random_smooth: negative and positive values
    return gaussian_filter(rng.standard_normal(SIZE), 16.0)


@pytest.fixture(scope="module")
def maps(data: OsieSubset) -> dict[str, list[np.ndarray]]:
    return {kind: [_make_map(kind, data, n) for n in range(N_IMAGES)] for kind in MAP_KINDS}


@pytest.fixture(scope="module")
def references(data: OsieSubset) -> list[np.ndarray]:
    return [
        metrics.empirical_density(x, y, SIZE, SIGMA) for x, y in zip(data.xs, data.ys, strict=True)
    ]


def _dedup_mask(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """True for the first fixation on each pixel."""
    flat = np.floor(ys).astype(int) * SIZE[1] + np.floor(xs).astype(int)
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.unique(flat, return_index=True)[1]] = True
    return keep


class PysaliencyData:
    """The subset as pysaliency objects, and models that serve precomputed maps."""

    def __init__(self, pys: ModuleType, data: OsieSubset, dedup: bool = False) -> None:
        xs, ys, ns = [], [], []
        for n in range(N_IMAGES):
            keep = _dedup_mask(data.xs[n], data.ys[n]) if dedup else slice(None)
            xs.append(data.xs[n][keep])
            ys.append(data.ys[n][keep])
            ns.append(np.full(len(xs[-1]), n))
        self.fixations = pys.Fixations.create_without_history(
            np.concatenate(xs), np.concatenate(ys), np.concatenate(ns)
        )
        # Stimulus n is a constant image of value n, which is how the models below find the map.
        self.stimuli = pys.Stimuli([np.broadcast_to(np.uint8(n), SIZE) for n in range(N_IMAGES)])
        self.pys = pys

    def saliency_model(self, maps: list[np.ndarray]):
        class Precomputed(self.pys.SaliencyMapModel):
            def _saliency_map(self, stimulus: np.ndarray) -> np.ndarray:
                return maps[int(stimulus[0, 0])]

        return Precomputed(caching=False)

    def density_model(self, log_densities: list[np.ndarray]):
        class Precomputed(self.pys.Model):
            def _log_density(self, stimulus: np.ndarray) -> np.ndarray:
                return log_densities[int(stimulus[0, 0])]

        return Precomputed(caching=False)

    def per_image_mean(self, per_fixation: np.ndarray) -> np.ndarray:
        n = self.fixations.n
        return np.bincount(n, weights=per_fixation) / np.bincount(n)


@pytest.fixture(scope="module")
def pys_data(pysaliency: ModuleType, data: OsieSubset) -> PysaliencyData:
    return PysaliencyData(pysaliency, data)


@pytest.fixture(scope="module")
def pys_data_dedup(pysaliency: ModuleType, data: OsieSubset) -> PysaliencyData:
    return PysaliencyData(pysaliency, data, dedup=True)


def _ours(fn, data: OsieSubset, maps_: list[np.ndarray]) -> np.ndarray:
    return np.array([fn(maps_[n], data.xs[n], data.ys[n]) for n in range(N_IMAGES)])


# --------------------------------------------------------------------------- brute force


def _trapezoid(x: list[float], y: list[float]) -> float:
    return sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1))


def mit_auc_judd(sal: np.ndarray, fixated: np.ndarray) -> float:
    """The loop of the MIT benchmark's AUC_Judd.m (without jitter), on a boolean fixation map."""
    s = sal.ravel()
    thresholds = np.sort(s[fixated.ravel()])[::-1]
    n_fix, n_pix = thresholds.size, s.size
    tp, fp = [0.0], [0.0]
    for i, t in enumerate(thresholds, start=1):
        above = np.count_nonzero(s >= t)
        tp.append(i / n_fix)
        fp.append((above - i) / (n_pix - n_fix))
    return _trapezoid([*fp, 1.0], [*tp, 1.0])


def mit_auc_borji(sal: np.ndarray, fixated: np.ndarray, n_splits: int, seed: int) -> float:
    """The loop of the MIT benchmark's AUC_Borji.m (step 0.1), with our documented sampling."""
    s = sal.ravel()
    s = (s - s.min()) / (s.max() - s.min())
    flat = np.flatnonzero(fixated.ravel())
    positives = s[flat]
    draws = np.random.default_rng(seed).integers(0, s.size, size=(n_splits, flat.size))
    areas = []
    for split in range(n_splits):
        negatives = s[draws[split]]
        top = max(positives.max(), negatives.max())
        thresholds = [k * 0.1 for k in range(math.floor(top / 0.1 + 1e-9), -1, -1)]
        tp = [0.0] + [float(np.mean(positives >= t)) for t in thresholds] + [1.0]
        fp = [0.0] + [float(np.mean(negatives >= t)) for t in thresholds] + [1.0]
        areas.append(_trapezoid(fp, tp))
    return float(np.mean(areas))


def _fixated_mask(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return metrics.fixation_map(xs, ys, SIZE) > 0


# --------------------------------------------------------------------------- maps and conventions


def test_fixation_pixel_is_the_floor_of_the_coordinates() -> None:
    fmap = metrics.fixation_map([3.0, 2.999, 0.0, 7.5, 7.2], [1.0, 1.999, 0.0, 4.0, 4.9], (6, 8))
    expected = np.zeros((6, 8))
    expected[1, 3] = expected[1, 2] = expected[0, 0] = 1
    expected[4, 7] = 2  # two fixations in one pixel both count
    np.testing.assert_array_equal(fmap, expected)


def test_fixation_map_matches_pysaliency(pys_data: PysaliencyData, data: OsieSubset) -> None:
    model = pys_data.pys.FixationMap(pys_data.stimuli, pys_data.fixations)
    for n in range(N_IMAGES):
        theirs = model.saliency_map(pys_data.stimuli.stimulus_objects[n])
        np.testing.assert_array_equal(metrics.fixation_map(data.xs[n], data.ys[n], SIZE), theirs)


def test_empirical_density_matches_pysaliency_fixation_map(
    pys_data: PysaliencyData, references: list[np.ndarray]
) -> None:
    model = pys_data.pys.FixationMap(pys_data.stimuli, pys_data.fixations, kernel_size=SIGMA)
    for n in range(N_IMAGES):
        theirs = model.saliency_map(pys_data.stimuli.stimulus_objects[n])
        theirs = theirs / theirs.sum()
        assert references[n].sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(references[n], theirs, rtol=0, atol=1e-12 * theirs.max())
        # Same truncation: exact zeros beyond 4 sigma from every fixation, in the same pixels.
        np.testing.assert_array_equal(references[n] == 0, theirs == 0)
        assert (theirs == 0).any()


def test_center_bias_density_matches_pysaliency_gaussian(pysaliency: ModuleType) -> None:
    height, width = SIZE
    ours = metrics.center_bias_density(SIZE, 0.23, 0.23)
    model = pysaliency.GaussianSaliencyMapModel(
        width=0.23, center_x=0.5 - 0.5 / width, center_y=0.5 - 0.5 / height, caching=False
    )
    theirs = model.saliency_map(np.zeros(SIZE, dtype=np.uint8))
    np.testing.assert_allclose(ours, theirs / theirs.sum(), rtol=1e-12, atol=0)
    # Centred on the image: symmetric under both flips.
    np.testing.assert_allclose(ours, ours[::-1, ::-1], rtol=1e-12)


def test_center_bias_density_widths_are_fractions_of_each_side() -> None:
    density = metrics.center_bias_density((40, 100), 0.1, 0.3)
    rows = np.arange(40) + 0.5
    cols = np.arange(100) + 0.5
    marginal_y, marginal_x = density.sum(axis=1), density.sum(axis=0)
    std_y = math.sqrt(np.sum(marginal_y * (rows - 20) ** 2))
    std_x = math.sqrt(np.sum(marginal_x * (cols - 50) ** 2))
    assert std_x == pytest.approx(0.1 * 100, rel=1e-3)
    assert std_y < 0.3 * 40  # truncated by the image border
    assert density.sum() == pytest.approx(1.0, abs=1e-12)


def test_sigma_px_converts_degrees() -> None:
    assert metrics.sigma_px(1.5, 24.0) == 36.0


def test_rescale_fixations_matches_pysaliency_shuffled_negatives(pysaliency: ModuleType) -> None:
    sizes = [(600, 800), (480, 640), (1024, 768)]
    rng = np.random.default_rng(3)
    xs, ys, ns = [], [], []
    for n, (h, w) in enumerate(sizes):
        xs.append(rng.uniform(0, w, 50))
        ys.append(rng.uniform(0, h, 50))
        ns.append(np.full(50, n))
    x, y, n_all = np.concatenate(xs), np.concatenate(ys), np.concatenate(ns)
    stimuli = pysaliency.Stimuli([np.zeros(s, dtype=np.uint8) for s in sizes])
    fixations = pysaliency.Fixations.create_without_history(x, y, n_all)
    provider = pysaliency.saliency_map_models.FullShuffledNonfixationProvider(stimuli, fixations)
    theirs_x, theirs_y = provider(stimuli, fixations, 0)  # negatives of image 0
    other = n_all != 0
    heights = np.array([s[0] for s in sizes])[n_all[other]]
    widths = np.array([s[1] for s in sizes])[n_all[other]]
    ours_x, ours_y = metrics.rescale_fixations(x[other], y[other], (heights, widths), sizes[0])
    np.testing.assert_array_equal(np.floor(ours_x).astype(int), theirs_x)
    np.testing.assert_array_equal(np.floor(ours_y).astype(int), theirs_y)


# --------------------------------------------------------------------------- against pysaliency


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_auc_uniform_matches_pysaliency(kind, data, maps, pys_data) -> None:
    model = pys_data.saliency_model(maps[kind])
    theirs = model.AUC_per_image(pys_data.stimuli, pys_data.fixations, nonfixations="uniform")
    ours = _ours(metrics.auc_uniform, data, maps[kind])
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_auc_shuffled_matches_pysaliency(kind, data, maps, pys_data) -> None:
    model = pys_data.saliency_model(maps[kind])
    theirs = model.AUC_per_image(pys_data.stimuli, pys_data.fixations, nonfixations="shuffled")
    ours = [
        metrics.auc_shuffled(maps[kind][n], data.xs[n], data.ys[n], *data.others(n))
        for n in range(N_IMAGES)
    ]
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_auc_judd_matches_pysaliency_on_distinct_fixated_pixels(
    kind, data, maps, pys_data_dedup
) -> None:
    """pysaliency's AUC_Judd(jitter=False) per image, given one fixation per fixated pixel.

    pysaliency counts a pixel once per fixation on it; MIT (and we) count it once. With
    de-duplicated fixations the definitions coincide, ties included.
    """
    model = pys_data_dedup.saliency_model(maps[kind])
    theirs = model.AUC_per_image(
        pys_data_dedup.stimuli,
        pys_data_dedup.fixations,
        nonfixations="unfixated",
        thresholds="fixations",
    )
    ours = _ours(metrics.auc_judd, data, maps[kind])
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_osie_has_repeated_fixated_pixels(data: OsieSubset) -> None:
    """The de-duplication above is not vacuous: some pixels are fixated more than once."""
    assert sum(int((~_dedup_mask(x, y)).sum()) for x, y in zip(data.xs, data.ys, strict=True)) > 0


@pytest.mark.parametrize("kind", ["intensity", "random_smooth"])
def test_auc_judd_matches_mit_loop(kind, data, maps) -> None:
    """On maps whose fixated pixels have distinct values, MIT's loop and ours agree exactly."""
    for n in range(N_IMAGES):
        sal, fixated = maps[kind][n], _fixated_mask(data.xs[n], data.ys[n])
        values = sal[fixated]
        assert np.unique(values).size == values.size, "premise: distinct fixated values"
        assert metrics.auc_judd(sal, data.xs[n], data.ys[n]) == pytest.approx(
            mit_auc_judd(sal, fixated), rel=RTOL, abs=ATOL
        )


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_auc_borji_matches_mit_loop(kind, data, maps) -> None:
    for n in range(2):
        sal = maps[kind][n]
        fixated = _fixated_mask(data.xs[n], data.ys[n])
        ours = metrics.auc_borji(sal, data.xs[n], data.ys[n], 20, rng=7)
        assert ours == pytest.approx(mit_auc_borji(sal, fixated, 20, 7), rel=RTOL, abs=ATOL)


def test_auc_borji_exact_thresholds_estimate_the_uniform_auc(data, maps, pysaliency) -> None:
    """Uniform random negatives estimate the exact AUC against all pixels (pysaliency's ROC)."""
    from pysaliency.roc import general_roc

    for n in range(2):
        sal = maps["intensity"][n]
        fixated = _fixated_mask(data.xs[n], data.ys[n])
        exact, _, _ = general_roc(sal[fixated].astype(float), sal.ravel().astype(float))
        estimate = metrics.auc_borji(sal, data.xs[n], data.ys[n], 400, step_size=None, rng=1)
        assert estimate == pytest.approx(exact, abs=0.01)


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_nss_matches_pysaliency(kind, data, maps, pys_data) -> None:
    model = pys_data.saliency_model(maps[kind])
    theirs = pys_data.per_image_mean(model.NSSs(pys_data.stimuli, pys_data.fixations))
    np.testing.assert_allclose(_ours(metrics.nss, data, maps[kind]), theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", MAP_KINDS)
@pytest.mark.parametrize(
    ("ours_fn", "theirs_name"),
    [(metrics.cc, "CC"), (metrics.kl_div, "MIT_KLDiv"), (metrics.sim, "SIM")],
    ids=["cc", "kl_div", "sim"],
)
def test_map_comparison_metrics_match_pysaliency(
    kind, ours_fn, theirs_name, maps, references, pysaliency
) -> None:
    theirs_fn = getattr(pysaliency.metrics, theirs_name)
    for n in range(N_IMAGES):
        with np.errstate(divide="ignore"):  # pysaliency takes log(0) of the zero pixels
            theirs = theirs_fn(maps[kind][n], references[n])
        assert ours_fn(maps[kind][n], references[n]) == pytest.approx(theirs, rel=RTOL, abs=ATOL)


def _log_densities(data: OsieSubset, maps) -> dict[str, list[np.ndarray]]:
    uniform = 1.0 / (SIZE[0] * SIZE[1])
    return {
        "center_bias": [np.log(m) for m in maps["center_bias"]],
        "empirical_loo": [np.log(0.9 * m + 0.1 * uniform) for m in maps["empirical_loo"]],
    }


@pytest.mark.parametrize("kind", ["center_bias", "empirical_loo"])
def test_log_likelihood_and_information_gain_match_pysaliency(kind, data, maps, pys_data) -> None:
    pys = pys_data.pys
    log_densities = _log_densities(data, maps)
    model = pys_data.density_model(log_densities[kind])
    ll = pys_data.per_image_mean(model.log_likelihoods(pys_data.stimuli, pys_data.fixations))
    np.testing.assert_allclose(
        _ours(metrics.log_likelihood, data, log_densities[kind]), ll / np.log(2), rtol=RTOL
    )
    for baseline_kind in ("uniform", "center_bias"):
        if baseline_kind == "uniform":
            baseline_model = pys.UniformModel()
            baselines = [np.full(SIZE, -np.log(SIZE[0] * SIZE[1]))] * N_IMAGES
        else:
            baselines = log_densities["center_bias"]
            baseline_model = pys_data.density_model(baselines)
        gains = model.information_gains(
            pys_data.stimuli, pys_data.fixations, baseline_model=baseline_model
        )
        ours = [
            metrics.information_gain(log_densities[kind][n], baselines[n], data.xs[n], data.ys[n])
            for n in range(N_IMAGES)
        ]
        np.testing.assert_allclose(ours, pys_data.per_image_mean(gains), rtol=RTOL, atol=ATOL)


def test_optimal_maps_match_pysaliency_models(data, maps, pys_data) -> None:
    """sAUC map: ShuffledAUCSaliencyMapModel; CC/KL/SIM map: the density blurred with reflect.

    The blur is pysaliency's BluringSaliencyMapModel with the empirical map's boundary mode.
    """
    pys = pys_data.pys
    log_densities = _log_densities(data, maps)
    model = pys_data.density_model(log_densities["empirical_loo"])
    baseline = pys_data.density_model(log_densities["center_bias"])
    shuffled = pys.ShuffledAUCSaliencyMapModel(model, baseline)
    blurred = pys.saliency_map_models.BluringSaliencyMapModel(
        pys.DensitySaliencyMapModel(model), SIGMA, mode="reflect", caching=False
    )
    for n in range(2):
        stimulus = pys_data.stimuli.stimulus_objects[n]
        logp, base = log_densities["empirical_loo"][n], log_densities["center_bias"][n]
        ours = metrics.optimal_saliency_map(logp, "auc_shuffled", baseline_log_density=base)
        np.testing.assert_allclose(ours, shuffled.saliency_map(stimulus), rtol=1e-12)
        ours = metrics.optimal_saliency_map(logp, "sim", sigma_px=SIGMA)
        theirs = blurred.saliency_map(stimulus)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12 * theirs.max())


# --------------------------------------------------------------------------- exact AUC counting


def brute_auc_uniform(sal: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """P(positive > pixel) + P(positive == pixel) / 2 over every fixation and every pixel."""
    pos = sal[np.floor(ys).astype(int), np.floor(xs).astype(int)][:, None]
    neg = sal.ravel()[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def brute_auc_judd(sal: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """The documented AUC-Judd: distinct fixated pixels vs the rest, thresholds at their values."""
    fixated = metrics.fixation_map(xs, ys, sal.shape) > 0
    pos, neg = sal[fixated], sal[~fixated]
    fpr, tpr = [0.0], [0.0]
    for t in np.unique(pos)[::-1]:
        fpr.append(float(np.mean(neg >= t)))
        tpr.append(float(np.mean(pos >= t)))
    return _trapezoid([*fpr, 1.0], [*tpr, 1.0])


def _adversarial_maps() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    shape = (60, 80)
    levels = rng.integers(0, 5, shape).astype(float)
    wide = 10.0 ** rng.uniform(-300, 300, shape) * rng.choice([-1.0, 1.0], shape)
    with_inf = gaussian_filter(rng.standard_normal(shape), 3.0)
    with_inf[:5, :5], with_inf[-5:, -5:] = -np.inf, np.inf
    smooth = gaussian_filter(rng.standard_normal(shape), 4.0)
    clustered = smooth.copy()  # a block of values 1e-15 apart inside otherwise spread values
    clustered[20:30, 20:30] = np.median(smooth) + 1e-15 * rng.integers(0, 4, (10, 10))
    return {
        # distinct values 1e-12 apart share a bucket; exact ties between them
        "near_ties": levels + 1e-12 * rng.integers(0, 3, shape),
        "wide_range": wide,
        "overflowing_range": np.where(wide > 0, 1.5e308, -1.5e308) * rng.random(shape),
        "with_inf": with_inf,
        "smooth": smooth,
        "clustered": clustered,
        "few_levels": levels,
    }


@pytest.mark.parametrize("name", list(_adversarial_maps()))
def test_auc_counting_is_exact_on_adversarial_values(name) -> None:
    sal = _adversarial_maps()[name]
    rng = np.random.default_rng(12)
    extremes = [
        np.unravel_index(np.argmax(sal), sal.shape),
        np.unravel_index(np.argmin(sal), sal.shape),
    ]
    rows = np.concatenate(
        [rng.integers(0, 60, 300), rng.integers(20, 30, 30), [r for r, _ in extremes]]
    )
    cols = np.concatenate(
        [rng.integers(0, 80, 300), rng.integers(20, 30, 30), [c for _, c in extremes]]
    )
    xs, ys = cols + rng.random(rows.size), rows + rng.random(rows.size)
    assert metrics.auc_uniform(sal, xs, ys) == pytest.approx(
        brute_auc_uniform(sal, xs, ys), abs=1e-12
    )
    assert metrics.auc_judd(sal, xs, ys) == pytest.approx(brute_auc_judd(sal, xs, ys), abs=1e-12)
    if name in ("near_ties", "smooth", "clustered", "few_levels"):  # NSS of the others overflows
        result = metrics.evaluate_map(sal, xs, ys)
        assert result["auc_uniform"] == metrics.auc_uniform(sal, xs, ys)
        assert result["auc_judd"] == metrics.auc_judd(sal, xs, ys)


# --------------------------------------------------------------------------- behaviour


def _values_and_fixations(data: OsieSubset, maps, kind: str = "intensity", n: int = 0):
    return maps[kind][n], data.xs[n], data.ys[n]


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_aucs_depend_only_on_the_order_of_values(kind, data, maps) -> None:
    """A strictly increasing transform (dense ranks: ties stay ties) changes no AUC."""
    sal, xs, ys = _values_and_fixations(data, maps, kind)
    ranked = rankdata(sal, method="dense").reshape(SIZE).astype(float) ** 1.5
    others = data.others(0)
    for fn in (metrics.auc_judd, metrics.auc_uniform):
        assert fn(ranked, xs, ys) == fn(sal, xs, ys)
    assert metrics.auc_shuffled(ranked, xs, ys, *others) == metrics.auc_shuffled(
        sal, xs, ys, *others
    )
    assert metrics.auc_borji(ranked, xs, ys, 30, step_size=None) == metrics.auc_borji(
        sal, xs, ys, 30, step_size=None
    )


def test_nss_is_invariant_to_positive_affine_maps_and_flips_sign(data, maps) -> None:
    sal, xs, ys = _values_and_fixations(data, maps, "random_smooth")
    value = metrics.nss(sal, xs, ys)
    assert metrics.nss(3.0 * sal + 7.0, xs, ys) == pytest.approx(value, rel=1e-9)
    assert metrics.nss(-sal, xs, ys) == pytest.approx(-value, rel=1e-9)


def test_cc_is_symmetric_bounded_and_affine_invariant(data, maps, references) -> None:
    sal, ref = maps["intensity"][0], references[0]
    value = metrics.cc(sal, ref)
    assert -1.0 < value < 1.0
    assert metrics.cc(ref, sal) == pytest.approx(value, rel=1e-12)
    assert metrics.cc(2.0 * sal - 5.0, ref) == pytest.approx(value, rel=1e-9)
    assert metrics.cc(sal, sal) == pytest.approx(1.0, rel=1e-12)
    assert metrics.cc(sal, -sal) == pytest.approx(-1.0, rel=1e-12)


def test_kl_div_is_zero_for_identical_maps_and_positive_otherwise(maps, references) -> None:
    ref = references[0]
    assert abs(metrics.kl_div(ref, ref)) < 1e-9
    assert abs(metrics.kl_div(7.0 * ref, ref)) < 1e-9  # maps are normalized first
    assert metrics.kl_div(maps["center_bias"][0], ref) > 0.1
    # Direction KL(reference || map): for strictly positive maps it is sum(q log(q / p)).
    p, q = metrics.center_bias_density((6, 8), 0.3, 0.3), metrics.center_bias_density((6, 8), 1, 2)
    assert metrics.kl_div(p, q) == pytest.approx(np.sum(q * np.log(q / p)), rel=1e-9)
    assert metrics.kl_div(p, q) != pytest.approx(np.sum(p * np.log(p / q)), rel=1e-3)


def test_sim_is_one_for_identical_maps_symmetric_and_bounded(maps, references) -> None:
    ref, sal = references[0], maps["center_bias"][0]
    assert metrics.sim(ref, 3.0 * ref) == pytest.approx(1.0, rel=1e-12)
    value = metrics.sim(sal, ref)
    assert 0.0 < value < 1.0
    assert metrics.sim(ref, sal) == pytest.approx(value, rel=1e-12)


def test_information_gain_of_a_model_against_itself_is_zero(data, maps) -> None:
    log_density = _log_densities(data, maps)["empirical_loo"][0]
    xs, ys = data.xs[0], data.ys[0]
    assert metrics.information_gain(log_density, log_density, xs, ys) == 0.0
    uniform = np.full(SIZE, -np.log(SIZE[0] * SIZE[1]))
    assert metrics.log_likelihood(uniform, xs, ys) == pytest.approx(-np.log2(SIZE[0] * SIZE[1]))
    gain = metrics.information_gain(log_density, uniform, xs, ys)
    assert gain == pytest.approx(
        metrics.log_likelihood(log_density, xs, ys) + np.log2(SIZE[0] * SIZE[1]), rel=1e-12
    )
    assert gain > 0  # human fixations are predicted better by other humans than by chance


def test_aucs_of_a_perfect_and_of_a_constant_map(data) -> None:
    xs, ys = data.xs[0], data.ys[0]
    fixated = _fixated_mask(xs, ys).astype(float)
    n_fixated, n_pixels = int(fixated.sum()), fixated.size
    assert metrics.auc_judd(fixated, xs, ys) == 1.0
    # A few uniform negatives land on fixated pixels and tie with the positives.
    assert 0.999 < metrics.auc_borji(fixated, xs, ys) <= 1.0
    # Against all pixels, fixated pixels tie with themselves: each positive beats the
    # unfixated pixels and half of the fixated ones.
    expected = (n_pixels - n_fixated + 0.5 * n_fixated) / n_pixels
    assert metrics.auc_uniform(fixated, xs, ys) == pytest.approx(expected, rel=1e-15)
    constant = np.full(SIZE, 0.3)
    for fn in (metrics.auc_judd, metrics.auc_borji, metrics.auc_uniform):
        assert fn(constant, xs, ys) == 0.5
    assert metrics.auc_shuffled(constant, xs, ys, *data.others(0)) == 0.5
    assert metrics.nss(constant, xs, ys) == 0.0
    assert metrics.cc(constant, fixated) == 0.0 == metrics.cc(fixated, constant)


def test_auc_judd_jitter_breaks_ties_reproducibly(data, maps) -> None:
    sal, xs, ys = _values_and_fixations(data, maps, "quantized")
    jittered = metrics.auc_judd(sal, xs, ys, jitter=1e-7, rng=5)
    assert jittered == metrics.auc_judd(sal, xs, ys, jitter=1e-7, rng=5)
    noise = 1e-7 * np.random.default_rng(5).random(SIZE)
    assert jittered == metrics.auc_judd(sal + noise, xs, ys)
    assert jittered != metrics.auc_judd(sal, xs, ys)  # the quantized map is full of ties


def test_evaluate_map_equals_the_individual_metrics(data, maps, references) -> None:
    sal, xs, ys = _values_and_fixations(data, maps, "intensity", 1)
    ox, oy = data.others(1)
    result = metrics.evaluate_map(sal, xs, ys, sigma_px=SIGMA, other_xs=ox, other_ys=oy, rng=4)
    expected = {
        "auc_judd": metrics.auc_judd(sal, xs, ys),
        "auc_borji": metrics.auc_borji(sal, xs, ys, rng=4),
        "auc_uniform": metrics.auc_uniform(sal, xs, ys),
        "nss": metrics.nss(sal, xs, ys),
        "auc_shuffled": metrics.auc_shuffled(sal, xs, ys, ox, oy),
        "cc": metrics.cc(sal, references[1]),
        "kl_div": metrics.kl_div(sal, references[1]),
        "sim": metrics.sim(sal, references[1]),
    }
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=1e-12), key


def test_evaluate_map_probabilistic_scores_the_optimal_maps(data, maps) -> None:
    log_densities = _log_densities(data, maps)
    logp, base = log_densities["empirical_loo"][2], log_densities["center_bias"][2]
    xs, ys = data.xs[2], data.ys[2]
    ox, oy = data.others(2)
    result = metrics.evaluate_map(
        logp,
        xs,
        ys,
        mode="probabilistic",
        sigma_px=SIGMA,
        other_xs=ox,
        other_ys=oy,
        baseline_log_density=base,
        shuffled_log_density=base,
    )
    ref = metrics.empirical_density(xs, ys, SIZE, SIGMA)
    density = metrics.optimal_saliency_map(logp, "nss")
    shuffled = metrics.optimal_saliency_map(logp, "auc_shuffled", baseline_log_density=base)
    smooth = metrics.optimal_saliency_map(logp, "cc", sigma_px=SIGMA)
    np.testing.assert_allclose(smooth, gaussian_filter(density, SIGMA, mode="reflect"), atol=1e-18)
    expected = {
        "auc_judd": metrics.auc_judd(density, xs, ys),
        "auc_borji": metrics.auc_borji(density, xs, ys),
        "auc_uniform": metrics.auc_uniform(density, xs, ys),
        "nss": metrics.nss(density, xs, ys),
        "auc_shuffled": metrics.auc_shuffled(shuffled, xs, ys, ox, oy),
        "cc": metrics.cc(smooth, ref),
        "kl_div": metrics.kl_div(smooth, ref),
        "sim": metrics.sim(smooth, ref),
        "log_likelihood": metrics.log_likelihood(logp, xs, ys),
        "information_gain": metrics.information_gain(logp, base, xs, ys),
    }
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=1e-12), key


# --------------------------------------------------------------------------- probabilistic mode

SYN_SIZE = (48, 64)


def _synthetic_truth() -> tuple[np.ndarray, np.ndarray]:
    """A known fixation density (three sharp objects plus a center bias) and the center bias."""
    center = metrics.center_bias_density(SYN_SIZE, 0.15, 0.15)
    objects = metrics.empirical_density([12.5, 40.5, 50.5], [10.5, 30.5, 14.5], SYN_SIZE, 1.5)
    return 0.5 * objects + 0.5 * center, center


def _sample(density: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    flat = rng.choice(density.size, size=n, p=density.ravel())
    rows, cols = np.divmod(flat, density.shape[1])
    return cols + rng.random(n), rows + rng.random(n)


def test_density_is_the_best_map_for_nss_and_auc() -> None:
    truth, _ = _synthetic_truth()
    xs, ys = _sample(truth, 4000, np.random.default_rng(0))
    density = metrics.optimal_saliency_map(np.log(truth), "nss")
    np.testing.assert_allclose(density, truth, rtol=1e-12)
    for other in (np.log(truth), np.sqrt(truth), gaussian_filter(truth, 3.0)):
        assert metrics.nss(density, xs, ys) > metrics.nss(other, xs, ys)
    for fn in (metrics.auc_uniform, metrics.auc_judd):
        assert fn(density, xs, ys) > fn(gaussian_filter(truth, 3.0), xs, ys)


def test_probabilistic_maps_beat_the_raw_density_on_their_metric() -> None:
    """sAUC, CC, KL and SIM of the optimal maps against the density itself, on held-out data.

    Fixations come from the known density; sAUC negatives from the center bias, as fixations of
    other images would; CC/KL/SIM compare with the empirical map of 20 fixations, repeated.
    """
    truth, center = _synthetic_truth()
    rng = np.random.default_rng(1)
    sigma = 2.5
    wins = {"auc_shuffled": 0, "cc": 0, "kl_div": 0, "sim": 0}
    sums = {"prob": dict.fromkeys(wins, 0.0), "map": dict.fromkeys(wins, 0.0)}
    repeats = 30
    for _ in range(repeats):
        xs, ys = _sample(truth, 20, rng)
        ox, oy = _sample(center, 200, rng)
        common = {"sigma_px": sigma, "other_xs": ox, "other_ys": oy}
        prob = metrics.evaluate_map(
            np.log(truth),
            xs,
            ys,
            mode="probabilistic",
            shuffled_log_density=np.log(center),
            **common,
        )
        raw = metrics.evaluate_map(np.exp(np.log(truth)), xs, ys, mode="map", **common)
        for key in wins:
            sums["prob"][key] += prob[key] / repeats
            sums["map"][key] += raw[key] / repeats
        for key in ("auc_judd", "auc_uniform", "nss"):  # same map in both modes
            assert prob[key] == pytest.approx(raw[key], rel=1e-12)
    for key in ("auc_shuffled", "cc", "sim"):
        assert sums["prob"][key] > sums["map"][key], key
    assert sums["prob"]["kl_div"] < sums["map"]["kl_div"]


def test_expected_empirical_map_is_the_mean_empirical_density() -> None:
    """The CC/KL/SIM map is exactly E[empirical_density] for fixations drawn from the density."""
    truth, _ = _synthetic_truth()
    optimal = metrics.optimal_saliency_map(np.log(truth), "kl_div", sigma_px=2.5)
    # E[blur(one fixation's map)] = blur(truth): average the blurred single-pixel maps.
    expected = np.zeros(SYN_SIZE)
    for flat in range(truth.size):
        row, col = divmod(flat, SYN_SIZE[1])
        expected += truth[row, col] * metrics.empirical_density([col], [row], SYN_SIZE, 2.5)
    np.testing.assert_allclose(optimal, expected, rtol=1e-9, atol=1e-18)
    assert optimal.sum() == pytest.approx(1.0, abs=1e-12)


def test_shuffled_optimal_map_is_the_log_ratio() -> None:
    truth, center = _synthetic_truth()
    ratio = metrics.optimal_saliency_map(
        np.log(truth), "auc_shuffled", baseline_log_density=np.log(center)
    )
    np.testing.assert_allclose(np.exp(ratio), truth / center, rtol=1e-9)
    zero = np.full(SYN_SIZE, -np.inf)
    zero[0, :2] = np.log(0.5)
    both_zero = metrics.optimal_saliency_map(zero, "auc_shuffled", baseline_log_density=zero)
    assert np.isneginf(both_zero[1:]).all() and (both_zero[0, :2] == 0).all()


# --------------------------------------------------------------------------- errors

_XS, _YS = np.array([1.5, 3.2]), np.array([2.0, 0.5])


_OTHER = (np.array([0.5]), np.array([0.5]))
_FIXATION_METRICS = {
    "auc_judd": metrics.auc_judd,
    "auc_borji": metrics.auc_borji,
    "auc_uniform": metrics.auc_uniform,
    "auc_shuffled": lambda s, x, y: metrics.auc_shuffled(s, x, y, *_OTHER),
    "nss": metrics.nss,
    "evaluate_map": metrics.evaluate_map,
}


@pytest.mark.parametrize("fn", _FIXATION_METRICS.values(), ids=_FIXATION_METRICS.keys())
def test_fixation_metrics_reject_nan_empty_and_outside(fn) -> None:
    good = np.random.default_rng(0).random((4, 5))
    fn(good, _XS, _YS)  # valid input works
    bad = good.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, _XS, _YS)
    with pytest.raises(ValueError, match="no fixations"):
        fn(good, np.array([]), np.array([]))
    for x, y in ((5.0, 1.0), (1.0, 4.0), (-0.5, 1.0)):
        with pytest.raises(ValueError, match="outside"):
            fn(good, np.array([x]), np.array([y]))
    with pytest.raises(ValueError, match="equal length"):
        fn(good, _XS, _YS[:1])


@pytest.mark.parametrize("fn", [metrics.cc, metrics.kl_div, metrics.sim])
def test_map_comparison_metrics_reject_nan_and_mismatched_shapes(fn) -> None:
    a = np.random.default_rng(0).random((4, 5))
    with pytest.raises(ValueError, match="different shapes"):
        fn(a, a[:, :4])
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, a)
    with pytest.raises(ValueError, match="NaN"):
        fn(a, bad)


def test_log_likelihood_rejects_bad_log_densities() -> None:
    logp = np.full((4, 5), -np.log(20.0))
    with pytest.raises(ValueError, match="not a normalized"):
        metrics.log_likelihood(logp + 1.0, _XS, _YS)
    with pytest.raises(ValueError, match="NaN"):
        metrics.log_likelihood(np.where(logp < 0, np.nan, logp), _XS, _YS)
    with pytest.raises(ValueError, match="no fixations"):
        metrics.log_likelihood(logp, [], [])
    with pytest.raises(ValueError, match="different shapes"):
        metrics.information_gain(logp, np.full((5, 4), -np.log(20.0)), _XS, _YS)


def test_optimal_saliency_map_rejects_unknown_or_incomplete_requests() -> None:
    logp = np.full((4, 5), -np.log(20.0))
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.optimal_saliency_map(logp, "auc")
    with pytest.raises(ValueError, match="baseline_log_density"):
        metrics.optimal_saliency_map(logp, "auc_shuffled")
    with pytest.raises(ValueError, match="sigma_px"):
        metrics.optimal_saliency_map(logp, "sim")
    with pytest.raises(ValueError, match="mode"):
        metrics.evaluate_map(logp, _XS, _YS, mode="density")
    with pytest.raises(ValueError, match="sigma_px"):
        metrics.evaluate_map(logp, _XS, _YS, mode="probabilistic", ref_map=np.ones((4, 5)))


def test_empirical_density_needs_fixations_and_a_positive_sigma() -> None:
    with pytest.raises(ValueError, match="no fixations"):
        metrics.empirical_density([], [], (4, 5), 1.0)
    with pytest.raises(ValueError, match="sigma_px"):
        metrics.empirical_density(_XS, _YS, (4, 5), 0.0)
    assert metrics.fixation_map([], [], (4, 5)).sum() == 0


def test_constant_maps_up_to_rounding_score_zero() -> None:
    """A uniform density, exponentiated and blurred, is constant up to rounding: NSS = CC = 0."""
    from salience.evaluation import metrics as m

    size = (60, 80)
    uniform = np.exp(np.full(size, -np.log(size[0] * size[1])))
    blurred = m.optimal_saliency_map(np.log(uniform), "cc", sigma_px=5.0)
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(0, 80, 20), rng.uniform(0, 60, 20)
    ref = m.empirical_density(xs, ys, size, 5.0)
    for smap in (uniform, blurred):
        assert m.nss(smap, xs, ys) == 0.0
        assert m.cc(smap, ref) == 0.0
    # a real but faint structure is not mistaken for a constant
    faint = uniform * (1 + 1e-6 * (np.arange(80) / 80))
    assert m.cc(faint, ref) != 0.0
