"""Baselines that frame every result: uniform, center bias, and the human gold standard.

Kernel densities here are separable: with a Gaussian kernel of per-axis widths, the density on a
pixel grid is ``Ky.T @ W @ Kx`` where ``Ky`` (points x rows) and ``Kx`` (points x columns) hold
1-D kernels evaluated at pixel centers. That makes a leave-one-observer-out density cost one small
matrix product instead of a full-image blur, and keeps positions continuous (no binning).

All densities are normalized over the image (mass falling outside is renormalized away, as
pysaliency's fixation-map models do) and returned as natural-log densities per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from salience.data.dataset import Dataset, Stimulus
from salience.models.base import DensityModel, ObserverConditionalModel
from salience.models.registry import register_model

# Bins per axis for the center-bias histogram (normalized coordinates); far finer than any
# bandwidth we select, so the binning error is negligible.
_CB_BINS = 128
_TINY = 1e-300


def _kernel_1d(centers: np.ndarray, n_pixels: int, sigma: float | np.ndarray) -> np.ndarray:
    """Gaussian kernel values of each center at the pixel centers 0.5 .. n-0.5: (points, n)."""
    grid = np.arange(n_pixels) + 0.5
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1, 1)
    return np.exp(-0.5 * ((grid[None, :] - centers[:, None]) / sigma) ** 2) / sigma


def kde_density(
    xs: np.ndarray,
    ys: np.ndarray,
    size: tuple[int, int],
    sigma_x: float,
    sigma_y: float | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian kernel density of points (0-based pixels) on a (height, width) grid, sum 1.

    Points are pixel positions (a fixation at x = j + 0.5 sits on pixel j's center).
    Returns a uniform density when there are no points.
    """
    height, width = size
    if len(xs) == 0:
        return np.full(size, 1.0 / (height * width))
    sigma_y = sigma_x if sigma_y is None else sigma_y
    w = np.ones(len(xs)) if weights is None else np.asarray(weights, dtype=np.float64)
    ky = _kernel_1d(np.asarray(ys, dtype=np.float64), height, sigma_y)  # (n, H)
    kx = _kernel_1d(np.asarray(xs, dtype=np.float64), width, sigma_x)  # (n, W)
    density = (ky * w[:, None]).T @ kx  # (H, W)
    total = density.sum()
    if not total > 0:
        return np.full(size, 1.0 / (height * width))
    return density / total


def _normalized_positions(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """All fixations as fractions of their image's width and height."""
    xs, ys = [], []
    for stim in dataset:
        x, y = stim.fixations()
        xs.append(x / stim.width)
        ys.append(y / stim.height)
    return np.concatenate(xs or [np.zeros(0)]), np.concatenate(ys or [np.zeros(0)])


def _pixel_lookup(log_density: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return log_density[ys.astype(int), xs.astype(int)]


class Uniform(DensityModel):
    """Every pixel equally likely: the zero point of information gain."""

    name = "uniform"
    needs_image = False

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        return np.full(size, -np.log(size[0] * size[1]))


class CenterBiasGaussian(DensityModel):
    """A 2-D Gaussian (full covariance) fitted to fixation positions in normalized coordinates."""

    name = "center-bias-gaussian"
    needs_image = False
    needs_fit = True

    def __init__(self, mean: Sequence[float] = (0.5, 0.5), cov: np.ndarray | None = None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.cov = np.diag([0.04, 0.04]) if cov is None else np.asarray(cov, dtype=np.float64)

    def fit(self, train: Dataset, val: Dataset | None = None) -> None:
        xs, ys = _normalized_positions(train)
        if len(xs) < 3:
            raise ValueError(f"{train.name}: too few fixations ({len(xs)}) to fit a center bias")
        points = np.stack([xs, ys])
        self.mean = points.mean(axis=1)
        self.cov = np.cov(points)

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        gx = (np.arange(width) + 0.5) / width - self.mean[0]
        gy = (np.arange(height) + 0.5) / height - self.mean[1]
        inv = np.linalg.inv(self.cov)
        quad = (
            inv[0, 0] * gx[None, :] ** 2
            + 2 * inv[0, 1] * gy[:, None] * gx[None, :]
            + inv[1, 1] * gy[:, None] ** 2
        )
        log_unnorm = -0.5 * quad
        return log_unnorm - logsumexp(log_unnorm)


@dataclass
class _CenterBiasFit:
    bandwidth: float  # kernel width as a fraction of image width / height
    uniform_weight: float


class CenterBiasKDE(DensityModel):
    """A kernel density of normalized fixation positions, mixed with a little uniform.

    Bandwidth and uniform weight are chosen by 5-fold cross-validated log-likelihood over the
    training images, so the center bias is as strong a baseline as the data allows.
    """

    name = "center-bias"
    needs_image = False
    needs_fit = True
    bandwidths = (0.02, 0.03, 0.05, 0.07, 0.1, 0.15)
    uniform_weights = (1e-4, 1e-3, 1e-2, 3e-2, 0.1)

    def __init__(self, bandwidth: float = 0.07, uniform_weight: float = 0.01):
        self.params = _CenterBiasFit(bandwidth, uniform_weight)
        self._hist = np.full((_CB_BINS, _CB_BINS), 1.0 / _CB_BINS**2)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _histogram(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        hist, _, _ = np.histogram2d(ys, xs, bins=_CB_BINS, range=[[0, 1], [0, 1]])
        return hist / max(hist.sum(), 1.0)

    @staticmethod
    def _density(hist: np.ndarray, size: tuple[int, int], bandwidth: float) -> np.ndarray:
        height, width = size
        centers = (np.arange(_CB_BINS) + 0.5) / _CB_BINS
        ky = _kernel_1d(centers * height, height, bandwidth * height)  # (bins, H)
        kx = _kernel_1d(centers * width, width, bandwidth * width)  # (bins, W)
        density = ky.T @ hist @ kx  # (H, W)
        return density / density.sum()

    def fit(self, train: Dataset, val: Dataset | None = None) -> None:
        """Fit the histogram to ``train``'s fixations; with two or more images holding fixations,
        choose bandwidth and uniform weight by cross-validation, else keep the current ones."""
        with_fixations = [s.id for s in train if s.n_fixations]
        if not with_fixations:
            raise ValueError(f"{train.name}: no fixations to fit a center bias to")
        if len(with_fixations) >= 2:
            self.params = self._cross_validated(train.subset(with_fixations))
        xs, ys = _normalized_positions(train)
        self._hist = self._histogram(xs, ys)
        self._cache.clear()

    def _cross_validated(self, train: Dataset) -> _CenterBiasFit:
        """Bandwidth and uniform weight of the best 5-fold log-likelihood (``train``: two or
        more images, each with fixations)."""
        n = len(train)
        folds = np.arange(n) % 5
        per_image = [np.stack(_normalized_positions(train.subset([s.id]))) for s in train]
        best, best_ll = None, -np.inf
        for bandwidth in self.bandwidths:
            # log-likelihood of held-out folds, per uniform weight
            ll = np.zeros(len(self.uniform_weights))
            count = 0
            for fold in np.unique(folds):
                fit_pts = np.concatenate(
                    [p for p, f in zip(per_image, folds, strict=True) if f != fold], 1
                )
                hist = self._histogram(fit_pts[0], fit_pts[1])
                density_cache: dict[tuple[int, int], np.ndarray] = {}
                for stim, pts, f in zip(train, per_image, folds, strict=True):
                    if f != fold or pts.shape[1] == 0:
                        continue
                    if stim.size not in density_cache:
                        density_cache[stim.size] = self._density(hist, stim.size, bandwidth)
                    p = density_cache[stim.size]
                    x, y = stim.fixations()
                    values = p[y.astype(int), x.astype(int)]
                    uniform = 1.0 / (stim.height * stim.width)
                    for k, w in enumerate(self.uniform_weights):
                        ll[k] += np.log((1 - w) * values + w * uniform).sum()
                    count += len(values)
            k = int(np.argmax(ll))
            if ll[k] / count > best_ll:
                best_ll = ll[k] / count
                best = _CenterBiasFit(bandwidth, self.uniform_weights[k])
        assert best is not None
        return best

    def log_density(self, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if size not in self._cache:
            density = self._density(self._hist, size, self.params.bandwidth)
            w = self.params.uniform_weight
            self._cache[size] = np.log((1 - w) * density + w / (size[0] * size[1]))
        return self._cache[size]


@dataclass
class _GoldFit:
    bandwidth_deg: float
    center_bias_weight: float
    uniform_weight: float


class GoldStandard(ObserverConditionalModel):
    """Leave-one-observer-out kernel density of the other observers' fixations.

    For observer ``s`` on an image, the prediction is a Gaussian kernel density of all other
    observers' fixations on that image (bandwidth in degrees of visual angle), mixed with the
    center bias and a little uniform. Bandwidth and mixing weights maximize the log-likelihood
    on the validation split. It is the practical upper bound of any model of these observers.
    """

    name = "gold-standard"
    needs_fit = True
    bandwidths_deg = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
    center_bias_weights = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
    uniform_weights = (1e-4, 1e-3, 1e-2, 3e-2, 0.1)

    def __init__(
        self,
        bandwidth_deg: float = 1.5,
        center_bias_weight: float = 0.1,
        uniform_weight: float = 1e-3,
    ):
        self.params = _GoldFit(bandwidth_deg, center_bias_weight, uniform_weight)
        self.tuned = False  # whether fit_tuning chose the parameters (else the defaults hold)
        self.center_bias = CenterBiasKDE()
        self.pixels_per_degree: float = 24.0
        self._dataset: Dataset | None = None
        self._fixed: tuple[tuple, np.ndarray] | None = None

    def _ppd(self, stimulus: Stimulus) -> float:
        if self._dataset is not None:
            return self._dataset.ppd(stimulus)
        return self.pixels_per_degree

    def _loo_density(self, stimulus: Stimulus, observer: int, bandwidth_deg: float) -> np.ndarray:
        x, y = stimulus.fixations()
        keep = stimulus.observer_index() != observer
        sigma = bandwidth_deg * self._ppd(stimulus)
        return kde_density(x[keep], y[keep], stimulus.size, sigma)

    def _loo_values(self, stimulus: Stimulus, bandwidth_deg: float) -> np.ndarray:
        """Each fixation's leave-its-observer-out kernel density at its own pixel, (n,).

        Uses separability: point k's kernel mass over the image is the product of its 1-D sums,
        so no map is built.
        """
        x, y = stimulus.fixations()
        obs = stimulus.observer_index()
        sigma = bandwidth_deg * self._ppd(stimulus)
        ky = _kernel_1d(y, stimulus.height, sigma)  # (n, H)
        kx = _kernel_1d(x, stimulus.width, sigma)  # (n, W)
        at_fix = ky[:, y.astype(int)] * kx[:, x.astype(int)]  # (points k, fixations f)
        mass = ky.sum(1) * kx.sum(1)  # (n,)
        same = obs[:, None] == obs[None, :]  # k and f from the same observer
        numerator = np.where(same, 0.0, at_fix).sum(0)
        denominator = mass.sum() - np.bincount(obs, weights=mass)[obs]
        return numerator / np.maximum(denominator, _TINY)

    def fit(self, train: Dataset, val: Dataset | None = None) -> None:
        """Fit the center bias on ``train``; choose bandwidth and weights on ``val``."""
        self.center_bias.fit(train)
        self._fixed = None
        self.fit_tuning(val if val is not None else train)

    def fit_tuning(self, tune_data: Dataset) -> None:
        """Choose bandwidth and mixing weights by log-likelihood on ``tune_data``.

        The center bias must already be fitted; the dataset's geometry becomes the default.
        """
        self._dataset = tune_data
        tune = [s for s in tune_data if len(s.scanpaths) >= 2]
        if not tune:
            raise ValueError(
                f"{tune_data.name}: no image with two observers to tune the gold standard"
            )
        cb, uniform = [], []
        for stim in tune:
            x, y = stim.fixations()
            cb.append(np.exp(_pixel_lookup(self.center_bias.log_density(None, stim.size), x, y)))
            uniform.append(np.full(len(x), 1.0 / (stim.height * stim.width)))
        cb_all, uniform_all = np.concatenate(cb), np.concatenate(uniform)
        best, best_ll = None, -np.inf
        for bandwidth in self.bandwidths_deg:
            kde = np.concatenate([self._loo_values(stim, bandwidth) for stim in tune])
            for wc in self.center_bias_weights:
                for wu in self.uniform_weights:
                    mix = (1 - wc - wu) * kde + wc * cb_all + wu * uniform_all
                    ll = np.log(mix).mean()
                    if ll > best_ll:
                        best_ll, best = ll, _GoldFit(bandwidth, wc, wu)
        assert best is not None
        self.params = best
        self.tuned = True

    def use_geometry_of(self, dataset: Dataset) -> None:
        """Take pixels-per-degree from ``dataset`` (the one being evaluated)."""
        self._dataset = dataset

    def _mixed_at_fixations(self, stimulus: Stimulus) -> np.ndarray:
        """Each fixation's leave-its-observer-out log-density at its pixel, without a map."""
        p = self.params
        x, y = stimulus.fixations()
        kde = self._loo_values(stimulus, p.bandwidth_deg)
        cb = np.exp(_pixel_lookup(self.center_bias.log_density(None, stimulus.size), x, y))
        uniform = 1.0 / (stimulus.height * stimulus.width)
        w_kde = 1 - p.center_bias_weight - p.uniform_weight
        return np.log(w_kde * kde + p.center_bias_weight * cb + p.uniform_weight * uniform)

    def information_gain(self, stimulus: Stimulus, baseline: DensityModel) -> float:
        """Mean information gain (bits per fixation) over ``baseline`` on one image.

        Equal to scoring :meth:`log_density_without` per observer, but needs no maps.
        """
        x, y = stimulus.fixations()
        base = _pixel_lookup(baseline.log_density(None, stimulus.size), x, y)
        return float(np.mean(self._mixed_at_fixations(stimulus) - base) / np.log(2))

    def log_density_without(self, stimulus: Stimulus, observer: int) -> np.ndarray:
        p = self.params
        kde = self._loo_density(stimulus, observer, p.bandwidth_deg)
        kde *= 1 - p.center_bias_weight - p.uniform_weight
        kde += self._fixed_part(stimulus.size)
        return np.log(kde, out=kde)

    def _fixed_part(self, size: tuple[int, int]) -> np.ndarray:
        """The center-bias and uniform part of the mixture on a (height, width) grid; the
        last one is kept (every observer of an image, and images of one size, share it)."""
        p = self.params
        key = (size, p.center_bias_weight, p.uniform_weight)
        if self._fixed is None or self._fixed[0] != key:
            cb = np.exp(self.center_bias.log_density(None, size))
            part = p.center_bias_weight * cb + p.uniform_weight / (size[0] * size[1])
            part.flags.writeable = False
            self._fixed = (key, part)
        return self._fixed[1]


@register_model("uniform", "Uniform density: the zero of information gain.")
def uniform(pretrained: bool = False) -> Uniform:
    return Uniform()


def fit_references(
    train: Dataset, tune: Dataset, evaluated: Dataset
) -> tuple[CenterBiasKDE, GoldStandard, float | None]:
    """The two ends of the explainable-IG scale for scoring ``evaluated``: the center bias fitted
    on ``train``, the gold standard tuned on ``tune`` (with ``evaluated``'s geometry), and the
    gold standard's mean IG over ``evaluated``'s images with two or more observers (None if
    there are none).

    When no image of ``tune`` has two observers the gold standard cannot be tuned: it keeps its
    default parameters and ``gold.tuned`` is False, for the caller to say so. A ``train`` without
    fixations is a ValueError naming it.
    """
    center_bias = CenterBiasKDE()
    center_bias.fit(train)
    gold = GoldStandard()
    gold.center_bias = center_bias
    if any(len(s.scanpaths) >= 2 for s in tune):
        gold.fit_tuning(tune)
    gold.use_geometry_of(evaluated)
    gains = [gold.information_gain(s, center_bias) for s in evaluated if len(s.scanpaths) >= 2]
    return center_bias, gold, float(np.mean(gains)) if gains else None


@register_model("center-bias", "Center bias: kernel density of normalized fixation positions.")
def center_bias(pretrained: bool = False, **overrides: float) -> CenterBiasKDE:
    return CenterBiasKDE(**overrides)


@register_model("center-bias-gaussian", "Center bias: one 2-D Gaussian of normalized positions.")
def center_bias_gaussian(pretrained: bool = False) -> CenterBiasGaussian:
    return CenterBiasGaussian()


@register_model("gold-standard", "Leave-one-observer-out density of the other observers.")
def gold_standard(pretrained: bool = False, **overrides: float) -> GoldStandard:
    return GoldStandard(**overrides)
