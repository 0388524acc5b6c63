"""Scanpaths sampled from any model's saliency density, and its deterministic likely fixations.

:class:`ScanpathSampler` turns a density (float (H, W), non-negative, one image) into scanpaths:

* the first fixation is drawn with probability proportional to ``density(x) * S(|x - c|)``, ``c``
  the image center. In OSIE and NUS Scene the fixation on the central fixation cross is not part
  of the recorded scanpaths (NUS onsets: the first recorded fixation starts a median 0.28 s after
  image onset, 10-90 %: 0.08-0.44 s), but the first recorded fixation lands nearer the center
  than later ones: median 4.8 degrees from it in OSIE and 4.4 in NUS Scene, against 7.1-8.3 and
  6.7-7.5 for fixations 2 to 6, and only 14 % and 12 % land within 1.5 degrees of it. So the
  center acts as the launch point of the first saccade, and ``S`` is learned like ``A``, below.
* each next fixation is drawn with probability proportional to
  ``density(x) * A(|x - current|) * prod_k (1 - strength * exp(-|x - p_k|^2 / (2 sigma^2)))``:
  ``A`` is the saccade-amplitude prior as a density per unit area (a radial histogram divided by
  its annuli's areas, i.e. ``p(r) / (2 pi r)``), and the product is inhibition of return (IOR)
  around every fixation before the current one. The current fixation is not inhibited: ``A``
  already describes how far people move from it.
* fixation durations are log-normal, the first fixation with its own parameters (it is shorter:
  median 0.16 vs 0.19 s in OSIE, 0.21 vs 0.24 s in NUS Scene).

Distances are in degrees of visual angle (``ppd`` pixels per degree), so one sampler serves every
image size. Each fixation is chosen on a grid of at most :data:`MAX_CELLS` cells along the longer
side (OSIE's 800x600: 64x48 cells of 12.5 px, about half a degree), with the priors and IOR taken
at cell centers; within the chosen cell a pixel is drawn in proportion to the density itself (so
zero-density pixels are never fixated) and the point is jittered uniformly within that pixel.
All randomness comes from one ``numpy.random.Generator``: same seed, same scanpaths.

Fitting (:meth:`ScanpathSampler.fit`). Multiplying a saliency density by the raw histogram of
observed amplitudes counts short saccades twice, because a good density is already high around
the current fixation: sampled saccades then come out far too short (median 2.0 degrees on OSIE
val, observed 4.2). So ``A`` and ``S`` are fitted by maximum likelihood of the real next
fixations under ``reference density * A * IOR``, the reference being model-like: the other
observers' fixations on the image blurred by 2 degrees, mixed 10 % with uniform. ``log A`` is
piecewise linear between knots (:data:`_KNOTS_DEG`) with a light smoothness penalty; the model
is log-linear and Newton's method reaches the maximum in a few steps. IOR width and strength
are then chosen on a grid by the same likelihood, and ``A`` refitted with them. Stored
``amplitude_probs`` and ``start_probs`` are the radial distributions these priors give on a
uniform, unbounded image, which is why their medians (12.5 and 6 degrees from OSIE train)
exceed the observed ones (4.2 and 4.8): on a real image the density and its borders cut the
long saccades short. Measured on OSIE val (3000 saccades; mean log-likelihood in bits per
fixation on the grid, higher is better): no amplitude prior -9.73, raw histogram -9.59, fitted
-9.13, fitted with IOR -9.06; first fixations: no start prior -9.37, raw histogram -8.69,
fitted -8.67. Sampled with the observers' blurred density on OSIE val images, saccade
amplitudes have median 5.7 degrees (observed 4.2; NUS Scene: 4.9 vs 4.7) and first fixations
lie a median 4.7 degrees from the center (observed 4.7).

IOR on OSIE train comes out weak and broad (sigma 6 degrees, strength 0.3; NUS Scene: 8 and 0.3):
it gains 0.07 bits per fixation on OSIE val over none, while strong local inhibition (sigma up to
2 degrees, strength 0.4 or more) loses 0.03 to 0.3 bits. People do refixate.

``ScanpathSampler()`` holds the parameters fitted on OSIE train, so a model without its own
fitted sampler still gets data-driven scanpaths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import fft as sp_fft

from salience.data.dataset import Dataset, Stimulus

Size = tuple[int, int]  # (height, width)
Seed = np.random.Generator | int | None

#: Cells along the longer image side for sampling (and fitting); see the module docstring.
MAX_CELLS = 64
#: Visual angle of an image's longer side when nothing else is known: OSIE's 800 px at 24 px/deg,
#: also the display NUS Scene is modelled with.
DEFAULT_IMAGE_SPAN_DEGREES = 800 / 24.0

_BIN_DEG = 0.5  # histogram bin width of the fitted priors, degrees
_REFERENCE_BLUR_DEG = 2.0  # reference density for fitting: other observers' fixations, blurred
_REFERENCE_UNIFORM = 0.1  # ... mixed with this much uniform
_IOR_SIGMAS_DEG = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
_IOR_STRENGTHS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)
_NEWTON_ITERATIONS = 20  # at most; stops when expected and observed counts agree to 1e-4 rows
_NEWTON_TOLERANCE = 1e-4
#: Knots of the fitted log prior, degrees: dense where saccades are common, sparse in the tail.
_SMOOTHING = 10.0  # weight of the roughness penalty on log K (see _fit_radial)
_KNOTS_DEG = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 26, 30, 35, 40, 50])


# ScanpathSampler.fit(OSIE train) with the defaults, to 4 significant digits: the parameters a
# ScanpathSampler() starts with. tests/test_sampling.py checks them against a fresh fit.
_OSIE_AMPLITUDE_PROBS = (
    0.01238, 0.01965, 0.0184, 0.01609, 0.01496, 0.01431, 0.0142, 0.01475, 0.01565, 0.01702,
    0.01889, 0.02144, 0.02325, 0.02411, 0.02487, 0.02553, 0.0259, 0.02597, 0.02596, 0.02587,
    0.02534, 0.0244, 0.02344, 0.02248, 0.02168, 0.02102, 0.02035, 0.01968, 0.019, 0.01832,
    0.01795, 0.01788, 0.01778, 0.01768, 0.01755, 0.01741, 0.01737, 0.01743, 0.01747, 0.0175,
    0.01752, 0.01753, 0.01753, 0.01752, 0.01668, 0.01514, 0.01373, 0.01245, 0.01128, 0.01022,
    0.009254, 0.008376, 0.00741, 0.006407, 0.005538, 0.004785, 0.004133, 0.003569, 0.003081,
    0.002659, 0.002293, 0.001976,
)  # fmt: skip
_OSIE_START_PROBS = (
    0.01981, 0.03771, 0.04141, 0.04141, 0.04269, 0.04463, 0.04661, 0.04911, 0.05189, 0.0552,
    0.05608, 0.05452, 0.05211, 0.04902, 0.04587, 0.04272, 0.03925, 0.03561, 0.0322, 0.02903,
    0.02547, 0.02176, 0.01855, 0.01578, 0.01292, 0.01018, 0.008012, 0.006296, 0.004941,
    0.003873, 0.003021, 0.002346,
)  # fmt: skip


def _edges(n_bins: int) -> tuple[float, ...]:
    return tuple(_BIN_DEG * i for i in range(n_bins + 1))


def default_ppd(size: Size) -> float:
    """Pixels per degree for an image of unknown viewing geometry (longer side 33.3 degrees)."""
    return max(size) / DEFAULT_IMAGE_SPAN_DEGREES


def as_density(density: npt.ArrayLike, name: str = "density") -> np.ndarray:
    """A 2-D float64 copy of ``density`` scaled to sum 1; NaN, inf, negative or all-zero is an
    error."""
    arr = np.array(density, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.min() < 0:
        raise ValueError(f"{name} has negative values (min {arr.min():.3g}); a density is >= 0")
    total = arr.sum()
    if not total > 0:
        raise ValueError(f"{name} is zero everywhere")
    arr /= total  # arr is a copy
    return arr


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------- grids


class _Grid:
    """At most ``max_cells`` cells along the longer side; cell edges on whole pixels."""

    def __init__(self, size: Size, max_cells: int = MAX_CELLS) -> None:
        height, width = size
        cell = max(1.0, max(height, width) / max_cells)
        nx = min(width, max(1, round(width / cell)))
        ny = min(height, max(1, round(height / cell)))
        self.x_edges = np.round(np.linspace(0, width, nx + 1)).astype(np.intp)  # (nx + 1,)
        self.y_edges = np.round(np.linspace(0, height, ny + 1)).astype(np.intp)  # (ny + 1,)
        self.cx = (self.x_edges[:-1] + self.x_edges[1:]) / 2.0  # (nx,) cell centers, px
        self.cy = (self.y_edges[:-1] + self.y_edges[1:]) / 2.0  # (ny,)
        self.shape = (ny, nx)
        self.area = np.outer(np.diff(self.y_edges), np.diff(self.x_edges)).ravel()  # (C,) px

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat cell index of points inside the image: (n,) for (n,) x, y in pixels."""
        ix = np.searchsorted(self.x_edges, x, side="right") - 1  # (n,)
        iy = np.searchsorted(self.y_edges, y, side="right") - 1  # (n,)
        return iy * self.shape[1] + ix


class _CellDensity:
    """A density's mass per grid cell, and sampling of a pixel within a cell by the density."""

    def __init__(self, density: np.ndarray, grid: _Grid) -> None:
        self.pixels = _cell_pixels(tuple(grid.y_edges), tuple(grid.x_edges))  # (C, P)
        values = np.where(self.pixels >= 0, density.ravel()[self.pixels], 0.0)  # (C, P)
        cumulative = np.cumsum(values, axis=1)  # (C, P)
        self.mass = cumulative[:, -1].copy()  # (C,)
        scale = np.where(self.mass > 0, self.mass, 1.0)
        # each used row rises to exactly 1; float32 halves the memory of large images, and a
        # key that rounds equal to its predecessor only makes a negligible pixel unreachable
        self.keys = (cumulative / scale[:, None]).astype(np.float32)  # (C, P)
        self.width = density.shape[1]

    def sample_points(
        self, cells: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """A point in each of ``cells`` (n,): pixel by density, then uniform within it;
        x, y (n,)."""
        u = (1.0 - rng.random(len(cells))).astype(np.float32)  # (n,) in (0, 1]
        # the first pixel whose cumulative share reaches u rises above its predecessor: mass > 0
        position = (self.keys[cells] < u[:, None]).sum(axis=1)  # (n,)
        rows, cols = np.divmod(self.pixels[cells, position], self.width)  # (n,) each
        jitter = rng.random((2, len(cells)))  # (2, n)
        return cols + jitter[0], rows + jitter[1]


@lru_cache(maxsize=8)
def _cell_pixels(y_edges: tuple[int, ...], x_edges: tuple[int, ...]) -> np.ndarray:
    """Each grid cell's pixels (flat indices) side by side in one row, padded with -1: (C, P),
    read-only. It depends on the grid alone, so images of one size (a folder's) share it."""
    height, width = y_edges[-1], x_edges[-1]
    y, x = np.asarray(y_edges), np.asarray(x_edges)
    ny, nx = len(y) - 1, len(x) - 1
    row_cell = np.repeat(np.arange(ny), np.diff(y))  # (H,)
    col_cell = np.repeat(np.arange(nx), np.diff(x))  # (W,)
    max_w, max_h = int(np.diff(x).max()), int(np.diff(y).max())
    rows, cols = np.divmod(np.arange(height * width), width)  # (H*W,) each
    cell = row_cell[rows] * nx + col_cell[cols]  # (H*W,)
    rank = (rows - y[row_cell[rows]]) * max_w + (cols - x[col_cell[cols]])  # (H*W,)
    pixels = np.full((ny * nx, max_h * max_w), -1, dtype=np.int32)  # (C, P)
    pixels[cell, rank] = np.arange(height * width)
    pixels.flags.writeable = False
    return pixels


def _first_reaching(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row of ``weights`` (n, m), with probability proportional to the row."""
    cumulative = np.cumsum(weights, axis=1)  # (n, m)
    u = (1.0 - rng.random(len(weights))) * cumulative[:, -1]  # (n,) in (0, total]
    return (cumulative < u[:, None]).sum(axis=1)  # (n,): the first column reaching u has mass


def _choose_cells(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A flat cell index per row of ``weights`` (n, ny, nx), in proportion to the weights.

    A grid row first, then a cell in it: two short cumulative sums instead of one over all cells.
    """
    row = _first_reaching(weights.sum(axis=2), rng)  # (n,)
    col = _first_reaching(weights[np.arange(len(weights)), row], rng)  # (n,)
    return row * weights.shape[2] + col


# --------------------------------------------------------------------------- radial priors


def _check_histogram(edges: tuple[float, ...], probs: tuple[float, ...], what: str) -> None:
    """Validate a radial histogram: uniform bins from 0, probabilities summing to 1."""
    e = np.asarray(edges, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or len(p) != len(e) - 1:
        raise ValueError(f"{what}: need n + 1 edges for n probabilities, got {len(e)}, {len(p)}")
    width = e[1] - e[0]
    if e[0] != 0 or not width > 0 or not np.allclose(np.diff(e), width, rtol=1e-9, atol=0):
        raise ValueError(f"{what}: edges must be uniform bins starting at 0 degrees")
    if not (np.isfinite(p).all() and (p >= 0).all() and abs(p.sum() - 1) < 1e-3):
        raise ValueError(f"{what}: probabilities must be finite, >= 0 and sum to 1 (within 1e-3)")


def _per_area(edges: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """A radial histogram as a density per unit area on each annulus, plus 0 beyond: (bins + 1,)."""
    annulus = np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)  # (bins,)
    return np.append(probs / annulus, 0.0)


def _radial_bins(r: np.ndarray, bin_width: float, n_bins: int) -> np.ndarray:
    """Histogram bin of each distance ``r`` (degrees); ``n_bins`` marks beyond the last edge."""
    return np.minimum((r * (1.0 / bin_width)).astype(np.intp), n_bins)


# --------------------------------------------------------------------------- the sampler


@dataclass(frozen=True)
class Scanpaths:
    """``n`` sampled scanpaths of equal length: pixel coordinates and durations in seconds."""

    x: np.ndarray  # (n, length) float64, 0-based pixels
    y: np.ndarray  # (n, length)
    duration: np.ndarray  # (n, length) seconds


@dataclass(frozen=True)
class ScanpathSampler:
    """Parameters of the scanpath model (module docstring); all JSON-serializable.

    ``amplitude_*`` and ``start_*``: radial histograms in degrees (uniform bins from 0) of the
    saccade amplitude and of the first fixation's distance from the image center.
    ``first_duration`` and ``duration``: log-normal (mu, sigma) of durations in seconds (of the
    first and of later fixations). ``ior_sigma_deg``, ``ior_strength``: inhibition of return.
    ``fitted_on``: where the parameters come from (free text). The defaults are those fitted
    on OSIE train (module docstring).
    """

    amplitude_edges: tuple[float, ...] = _edges(len(_OSIE_AMPLITUDE_PROBS))
    amplitude_probs: tuple[float, ...] = _OSIE_AMPLITUDE_PROBS
    start_edges: tuple[float, ...] = _edges(len(_OSIE_START_PROBS))
    start_probs: tuple[float, ...] = _OSIE_START_PROBS
    first_duration: tuple[float, float] = (-1.852, 0.5385)
    duration: tuple[float, float] = (-1.666, 0.5616)
    ior_sigma_deg: float = 6.0
    ior_strength: float = 0.3
    fitted_on: str = "osie/train"

    def __post_init__(self) -> None:
        _check_histogram(self.amplitude_edges, self.amplitude_probs, "amplitude histogram")
        _check_histogram(self.start_edges, self.start_probs, "start histogram")
        for name in ("first_duration", "duration"):
            mu, sigma = getattr(self, name)
            if not (math.isfinite(mu) and math.isfinite(sigma) and sigma >= 0):
                raise ValueError(
                    f"{name}: need a finite log-mean and a sigma >= 0, got {mu, sigma}"
                )
        if not (math.isfinite(self.ior_sigma_deg) and self.ior_sigma_deg > 0):
            raise ValueError(f"ior_sigma_deg must be positive, got {self.ior_sigma_deg}")
        if not 0.0 <= self.ior_strength <= 1.0:
            raise ValueError(f"ior_strength must lie in [0, 1], got {self.ior_strength}")

    # ----------------------------------------------------------------- serialization

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists and floats), for a model's metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanpathSampler:
        """The inverse of :meth:`to_dict`; unknown or missing keys are an error."""
        fields = set(cls.__dataclass_fields__)
        unknown, missing = set(data) - fields, fields - set(data)
        if unknown or missing:
            raise ValueError(
                f"scanpath sampler parameters: unknown keys {sorted(unknown)}, "
                f"missing keys {sorted(missing)}"
            )
        return cls(
            **{k: tuple(float(x) for x in v) if isinstance(v, list) else v for k, v in data.items()}
        )

    # ----------------------------------------------------------------- sampling

    def sample(
        self,
        density: npt.ArrayLike,
        n: int,
        length: int,
        rng: Seed = None,
        ppd: float | None = None,
    ) -> Scanpaths:
        """``n`` scanpaths of ``length`` fixations on an image with this density (H, W).

        ``ppd``: pixels per degree of the image (default :func:`default_ppd`). ``rng``: a
        Generator or a seed. Where the priors leave no mass (density zero everywhere within
        reach of the amplitude prior), the next fixation is drawn from density and IOR alone.
        """
        if n < 1 or length < 1:
            raise ValueError(f"need n >= 1 scanpaths of length >= 1, got n={n}, length={length}")
        dens = as_density(density)
        ppd = default_ppd(dens.shape) if ppd is None else float(ppd)
        if not (math.isfinite(ppd) and ppd > 0):
            raise ValueError(f"ppd must be a positive number of pixels per degree, got {ppd}")
        rng = _rng(rng)
        grid = _Grid(dens.shape)
        cells = _CellDensity(dens, grid)
        cx, cy = grid.cx / ppd, grid.cy / ppd  # (nx,), (ny,) degrees
        ny, nx = grid.shape
        xs = np.empty((n, length))  # (n, length) px
        ys = np.empty((n, length))

        height, width = dens.shape
        start = self._start_weights(cx, cy, (width / 2 / ppd, height / 2 / ppd))  # (C,)
        weights = cells.mass * start  # (C,)
        if not weights.sum() > 0:
            weights = cells.mass
        cumulative = np.cumsum(weights)  # (C,)
        u = (1.0 - rng.random(n)) * cumulative[-1]  # (n,)
        chosen = np.searchsorted(cumulative, u, side="left")  # (n,)
        xs[:, 0], ys[:, 0] = cells.sample_points(chosen, rng)

        # the (n, C) work runs in float32: half the memory traffic, ample for choosing a cell
        amplitude = _per_area(
            np.asarray(self.amplitude_edges), np.asarray(self.amplitude_probs)
        ).astype(np.float32)  # (bins + 1,), 0 beyond the last bin
        scale = np.float32(1.0 / (self.amplitude_edges[1] - self.amplitude_edges[0]))
        mass = cells.mass.astype(np.float32)  # (C,)
        ior = np.ones((n, ny * nx), dtype=np.float32)  # (n, C)
        two_sigma2 = 2.0 * self.ior_sigma_deg**2
        for t in range(1, length):
            if t >= 2 and self.ior_strength > 0:  # inhibit fixation t - 2, now one before current
                gx = np.exp(-((cx - xs[:, t - 2, None] / ppd) ** 2) / two_sigma2)  # (n, nx)
                gy = np.exp(-((cy - ys[:, t - 2, None] / ppd) ** 2) / two_sigma2)  # (n, ny)
                g = gy.astype(np.float32)[:, :, None] * gx.astype(np.float32)[:, None, :]
                g *= np.float32(-self.ior_strength)
                g += np.float32(1.0)
                ior *= g.reshape(n, -1)  # (n, C)
            dx2 = ((cx - xs[:, t - 1, None] / ppd) ** 2).astype(np.float32)  # (n, nx)
            dy2 = ((cy - ys[:, t - 1, None] / ppd) ** 2).astype(np.float32)  # (n, ny)
            r = (dy2[:, :, None] + dx2[:, None, :]).reshape(n, -1)  # (n, C) squared degrees
            np.sqrt(r, out=r)
            r *= scale
            weights = amplitude.take(r.astype(np.int32), mode="clip")  # (n, C)
            weights *= mass
            weights *= ior
            empty = ~(weights.sum(axis=1) > 0)  # (n,)
            if empty.any():
                weights[empty] = mass * ior[empty]
                empty = ~(weights.sum(axis=1) > 0)
                weights[empty] = mass
            chosen = _choose_cells(weights.reshape(n, ny, nx), rng)  # (n,)
            xs[:, t], ys[:, t] = cells.sample_points(chosen, rng)

        durations = np.empty((n, length))  # (n, length) seconds
        durations[:, 0] = rng.lognormal(*self.first_duration, size=n)
        durations[:, 1:] = rng.lognormal(*self.duration, size=(n, length - 1))
        return Scanpaths(xs, ys, durations)

    def _start_weights(
        self, cx: np.ndarray, cy: np.ndarray, center: tuple[float, float]
    ) -> np.ndarray:
        """The start prior at each cell center: (C,), for ``center`` and cell centers in degrees."""
        start = _per_area(np.asarray(self.start_edges), np.asarray(self.start_probs))
        r = np.hypot(cy[:, None] - center[1], cx[None, :] - center[0]).ravel()  # (C,)
        width = self.start_edges[1] - self.start_edges[0]
        return start[_radial_bins(r, width, len(start) - 1)]

    # ----------------------------------------------------------------- fitting

    @classmethod
    def fit(
        cls,
        dataset: Dataset,
        *,
        max_transitions: int = 1500,
        max_starts: int = 1500,
        seed: int = 0,
    ) -> ScanpathSampler:
        """Learn the parameters from a dataset's scanpaths (module docstring says how).

        Durations use every fixation. The likelihood fits use a seeded random subset of the
        scanpaths: at most ``max_starts`` first fixations and ``max_transitions`` saccades
        (the defaults take about 3 s on OSIE train).
        """
        first_duration, duration = _fit_durations(dataset)
        order = _scanpath_order(dataset, seed)
        starts = _blocks(dataset, order, max_starts, starts=True)
        transitions = _blocks(dataset, order, max_transitions, starts=False)
        if not transitions:
            raise ValueError(f"{dataset.name}: no scanpath has two fixations; cannot fit saccades")
        longest_start, longest_saccade = _longest_distances(dataset)
        start_edges, start_probs = _fit_radial(starts, None, longest_start)
        amp_edges, amp_probs = _fit_radial(transitions, None, longest_saccade)
        sigma, strength = _fit_ior(transitions, amp_edges, amp_probs)
        if strength > 0:
            amp_edges, amp_probs = _fit_radial(transitions, (sigma, strength), longest_saccade)
        return cls(
            amplitude_edges=tuple(amp_edges.tolist()),
            amplitude_probs=tuple(amp_probs.tolist()),
            start_edges=tuple(start_edges.tolist()),
            start_probs=tuple(start_probs.tolist()),
            first_duration=first_duration,
            duration=duration,
            ior_sigma_deg=sigma,
            ior_strength=strength,
            fitted_on=dataset.name,
        )


# --------------------------------------------------------------------------- fitting helpers


def _lognormal(values: np.ndarray, what: str) -> tuple[float, float]:
    """Maximum-likelihood log-normal (mu, sigma) of positive finite values."""
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) < 2:
        raise ValueError(f"cannot fit {what}: fewer than 2 known durations (mouse tracking?)")
    logs = np.log(values)
    return float(logs.mean()), float(logs.std())


def _fit_durations(dataset: Dataset) -> tuple[tuple[float, float], tuple[float, float]]:
    paths = [sp for stim in dataset for sp in stim.scanpaths]
    first = np.array([sp.duration[0] for sp in paths])
    later = np.concatenate([sp.duration[1:] for sp in paths] or [np.zeros(0)])
    return (
        _lognormal(first, f"{dataset.name}: first-fixation durations"),
        _lognormal(later, f"{dataset.name}: fixation durations"),
    )


def _longest_distances(dataset: Dataset) -> tuple[float, float]:
    """The largest first-fixation offset from the center and saccade amplitude, degrees."""
    offset, amplitude = 0.0, 0.0
    for stim in dataset:
        ppd = dataset.ppd(stim)
        for sp in stim.scanpaths:
            x, y = sp.x + 0.5 - stim.width / 2, sp.y + 0.5 - stim.height / 2  # (f,) each
            offset = max(offset, float(np.hypot(x[0], y[0])) / ppd)
            if len(sp) > 1:
                amplitude = max(amplitude, float(np.hypot(np.diff(x), np.diff(y)).max()) / ppd)
    return offset, amplitude


def _scanpath_order(dataset: Dataset, seed: int) -> list[tuple[int, int]]:
    """Every (stimulus, scanpath) index pair, in a seeded random order."""
    pairs = [(i, k) for i, stim in enumerate(dataset) for k in range(len(stim.scanpaths))]
    permutation = np.random.default_rng(seed).permutation(len(pairs))
    return [pairs[j] for j in permutation]


@dataclass
class _Block:
    """One image's fitting rows: a reference density, a launch point and a target per row.

    Rows are first fixations (launched from the image center) or saccades; ``history`` holds
    the fixations before each launch point (NaN padded) for inhibition of return.
    """

    base: np.ndarray  # (T, C) reference density per cell
    cx: np.ndarray  # (nx,) cell centers, degrees
    cy: np.ndarray  # (ny,)
    origin: np.ndarray  # (T, 2) launch point x, y, degrees
    target: np.ndarray  # (T,) cell index of the landing point
    history: np.ndarray  # (T, L, 2) earlier fixations, latest first, degrees; NaN: none

    def distances(self) -> np.ndarray:
        """Distance from each row's launch point to every cell center: (T, C) degrees."""
        dx2 = (self.cx - self.origin[:, :1]) ** 2  # (T, nx)
        dy2 = (self.cy - self.origin[:, 1:]) ** 2  # (T, ny)
        return np.sqrt(dy2[:, :, None] + dx2[:, None, :]).reshape(len(self.base), -1)

    def ior_kernels(self, sigma: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per lag: the rows with a fixation that far back, and its Gaussian at every cell
        (r, C)."""
        kernels = []
        for lag in range(self.history.shape[1]):
            rows = np.flatnonzero(np.isfinite(self.history[:, lag, 0]))
            x, y = self.history[rows, lag, :1], self.history[rows, lag, 1:]  # (r, 1) each
            gx = np.exp(-((self.cx - x) ** 2) / (2 * sigma**2))  # (r, nx)
            gy = np.exp(-((self.cy - y) ** 2) / (2 * sigma**2))  # (r, ny)
            g = (gy[:, :, None] * gx[:, None, :]).reshape(len(rows), self.base.shape[1])
            kernels.append((rows, g))
        return kernels

    def ior(self, sigma: float, strength: float) -> np.ndarray:
        """The inhibition-of-return factor of each row's earlier fixations: (T, C)."""
        factor = np.ones_like(self.base)  # (T, C)
        for rows, g in self.ior_kernels(sigma):
            factor[rows] *= 1.0 - strength * g
        return factor


def _reference_densities(dataset: Dataset, stim: Stimulus, grid: _Grid) -> np.ndarray:
    """Per scanpath, the other observers' fixations blurred, mixed with uniform: (S, C)."""
    ppd = dataset.ppd(stim)
    sigma = _REFERENCE_BLUR_DEG * ppd
    per_observer = []
    for sp in stim.scanpaths:
        kx = np.exp(-0.5 * ((grid.cx - sp.x[:, None] - 0.5) / sigma) ** 2)  # (f, nx)
        ky = np.exp(-0.5 * ((grid.cy - sp.y[:, None] - 0.5) / sigma) ** 2)  # (f, ny)
        per_observer.append((ky.T @ kx).ravel() * grid.area)  # (C,)
    contributions = np.stack(per_observer)  # (S, C)
    others = contributions.sum(axis=0) - contributions  # (S, C)
    uniform = grid.area / grid.area.sum()  # (C,)
    totals = others.sum(axis=1, keepdims=True)  # (S, 1)
    blurred = np.where(totals > 0, others / np.where(totals > 0, totals, 1.0), uniform)
    return (1 - _REFERENCE_UNIFORM) * blurred + _REFERENCE_UNIFORM * uniform


def _blocks(
    dataset: Dataset, order: list[tuple[int, int]], budget: int, *, starts: bool
) -> list[_Block]:
    """Fitting rows of the scanpaths in ``order`` until ``budget`` rows, grouped by image."""
    chosen: dict[int, list[int]] = {}
    rows = 0
    for i, k in order:
        if rows >= budget:
            break
        count = 1 if starts else len(dataset[i].scanpaths[k]) - 1
        if count > 0:
            chosen.setdefault(i, []).append(k)
            rows += count
    blocks = []
    for i, paths in sorted(chosen.items()):
        stim = dataset[i]
        ppd = dataset.ppd(stim)
        grid = _Grid(stim.size)
        reference = _reference_densities(dataset, stim, grid)  # (S, C)
        base, origin, target, history = [], [], [], []
        for k in paths:
            sp = stim.scanpaths[k]
            cells = grid.cell_of(sp.x, sp.y)  # (f,)
            points = np.stack([sp.x + 0.5, sp.y + 0.5], axis=1) / ppd  # (f, 2) degrees
            if starts:
                base.append(reference[k][None])
                origin.append([[stim.width / 2 / ppd, stim.height / 2 / ppd]])
                target.append(cells[:1])
                history.append(np.full((1, 1, 2), np.nan))
                continue
            f = len(sp)
            base.append(np.repeat(reference[k][None], f - 1, axis=0))
            origin.append(points[:-1])
            target.append(cells[1:])
            # row t launches from fixation t; its history is fixations t - 1, t - 2, ..., 0
            lagged = np.full((f - 1, max(f - 2, 1), 2), np.nan)  # (f - 1, L, 2)
            for t in range(1, f - 1):
                lagged[t, :t] = points[t - 1 :: -1][:t]
            history.append(lagged)
        depth = max(h.shape[1] for h in history)
        history = [
            np.pad(h, ((0, 0), (0, depth - h.shape[1]), (0, 0)), constant_values=np.nan)
            for h in history
        ]
        blocks.append(
            _Block(
                np.concatenate(base),
                grid.cx / ppd,
                grid.cy / ppd,
                np.concatenate([np.asarray(o, dtype=np.float64) for o in origin]),
                np.concatenate(target),
                np.concatenate(history),
            )
        )
    return blocks


def _hat_basis(centers: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation weights of ``centers`` (bins,) on ``knots``: (bins, knots).

    Every row sums to 1 (a partition of unity): the hats' coefficients interpolate ``log K``.
    """
    basis = np.zeros((len(centers), len(knots)))
    upper = np.clip(np.searchsorted(knots, centers, side="right"), 1, len(knots) - 1)  # (bins,)
    lower = upper - 1
    t = np.clip((centers - knots[lower]) / (knots[upper] - knots[lower]), 0.0, 1.0)  # (bins,)
    rows = np.arange(len(centers))
    basis[rows, lower] = 1.0 - t
    basis[rows, upper] += t
    return basis


def _radial_statistics(
    weights: list[np.ndarray], bins: list[np.ndarray], basis: np.ndarray, theta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Under ``p(cell) ~ weights * exp(basis @ theta)[bin]``: the summed log normalizers, and
    the expected hat-function counts (knots,) with their summed covariance (knots, knots)."""
    n_bins = len(basis)
    k = np.exp(basis @ theta)  # (bins,)
    log_z = 0.0
    per_bin = np.zeros(n_bins)
    outer = np.zeros((basis.shape[1],) * 2)  # (knots, knots)
    for w, b in zip(weights, bins, strict=True):
        p = w * k[b]  # (T, C)
        z = p.sum(axis=1)  # (T,)
        log_z += float(np.log(z).sum())
        p /= z[:, None]
        index = np.arange(len(p))[:, None] * n_bins + b  # (T, C): (row, bin) pairs
        q = np.bincount(index.ravel(), p.ravel(), minlength=len(p) * n_bins)
        q = q.reshape(len(p), n_bins)  # (T, bins): each row's distance distribution
        per_bin += q.sum(axis=0)
        m = q @ basis  # (T, knots): each row's expected hat values
        outer += m.T @ m
    expected = per_bin @ basis  # (knots,)
    covariance = basis.T @ (per_bin[:, None] * basis) - outer  # (knots, knots)
    return log_z, expected, covariance


def _curvature(knots: np.ndarray) -> np.ndarray:
    """The changes of slope of a piecewise-linear function at its inner knots:
    (knots - 2, knots)."""
    inverse_gap = 1.0 / np.diff(knots)  # (knots - 1,)
    slopes = np.zeros((len(knots) - 1, len(knots)))  # slope of each segment from knot values
    rows = np.arange(len(knots) - 1)
    slopes[rows, rows], slopes[rows, rows + 1] = -inverse_gap, inverse_gap
    return np.diff(slopes, axis=0)


def _fit_radial(
    blocks: list[_Block], ior: tuple[float, float] | None, longest: float
) -> tuple[np.ndarray, np.ndarray]:
    """Radial histogram (edges, probs) maximizing the likelihood of the rows' landing cells.

    The model is ``p(cell) ~ base * IOR * K(distance)`` with ``log K`` piecewise linear in the
    distance between :data:`_KNOTS_DEG` (about 20 parameters instead of one per bin). It is
    log-linear, so the likelihood is concave, and stays so with a penalty on the changes of
    slope of ``log K`` (weight :data:`_SMOOTHING`), which only matters where data are sparse:
    distances up to ``longest`` (degrees, the dataset's longest) that the subset rarely or never
    reaches get a smooth continuation instead of noise. Newton's method finds the maximum.
    """
    distances = [b.distances() for b in blocks]  # (T, C) each
    reachable = max(float(d.max()) for d in distances)
    n_bins = int(np.floor(min(longest, reachable) / _BIN_DEG)) + 1
    edges = np.arange(n_bins + 1) * _BIN_DEG  # (bins + 1,)
    knots = np.append(_KNOTS_DEG[_KNOTS_DEG < edges[-1]], edges[-1])  # (knots,)
    basis = _hat_basis((edges[:-1] + edges[1:]) / 2, knots)  # (bins, knots)
    roughness = _curvature(knots)  # (knots - 2, knots)
    penalty = 2 * _SMOOTHING * roughness.T @ roughness  # (knots, knots): Hessian of the penalty
    bins = [_radial_bins(d, _BIN_DEG, n_bins - 1) for d in distances]  # (T, C) each
    weights = [b.base * (b.ior(*ior) if ior else 1.0) for b in blocks]  # (T, C) each
    landing = np.concatenate(
        [b[np.arange(len(b)), k.target] for b, k in zip(bins, blocks, strict=True)]
    )
    observed = np.bincount(landing, minlength=n_bins) @ basis  # (knots,)

    def objective(theta: np.ndarray, log_z: float) -> float:
        return float(theta @ observed - log_z - theta @ penalty @ theta / 2)

    theta = np.zeros(len(knots))  # (knots,) log K at the knots
    log_z, expected, covariance = _radial_statistics(weights, bins, basis, theta)
    for _ in range(_NEWTON_ITERATIONS):
        gradient = observed - expected - penalty @ theta
        if np.abs(gradient).max() < _NEWTON_TOLERANCE * len(landing):
            break
        # the objective is flat along theta + c (K is defined up to a factor): minimum-norm step
        step = np.linalg.lstsq(covariance + penalty, gradient, rcond=None)[0]
        current = objective(theta, log_z)
        for scale in 0.5 ** np.arange(12):  # backtrack until the objective does not drop
            trial = theta + scale * step
            stats = _radial_statistics(weights, bins, basis, trial)
            if objective(trial, stats[0]) >= current:
                break
        shift = trial.max()  # keep the largest K at 1
        theta = trial - shift
        log_z, expected, covariance = stats[0] - len(landing) * shift, stats[1], stats[2]
    radial = np.exp(basis @ theta) * np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)  # (bins,)
    return edges, radial / radial.sum()


def _fit_ior(blocks: list[_Block], edges: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """IOR width and strength on a grid, by the likelihood of the real next fixations."""
    amplitude = _per_area(edges, probs)
    bin_width = float(edges[1] - edges[0])
    without_ior = [  # (T, C) each: base * A, the same for every IOR setting
        b.base * amplitude[_radial_bins(b.distances(), bin_width, len(amplitude) - 1)]
        for b in blocks
    ]
    best = (-np.inf, _IOR_SIGMAS_DEG[0], 0.0)
    for sigma in _IOR_SIGMAS_DEG:
        totals = np.zeros(len(_IOR_STRENGTHS))
        for block, p0 in zip(blocks, without_ior, strict=True):
            kernels = block.ior_kernels(sigma)
            rows = np.arange(len(p0))
            for j, strength in enumerate(_IOR_STRENGTHS):
                p = p0.copy()
                for lag_rows, g in kernels:
                    p[lag_rows] *= 1.0 - strength * g
                totals[j] += np.sum(np.log(p[rows, block.target] / p.sum(axis=1)))
        j = int(np.argmax(totals))
        if totals[j] > best[0]:
            best = (totals[j], sigma, _IOR_STRENGTHS[j])
    return best[1], best[2]


# --------------------------------------------------------------------------- likely fixations


@lru_cache(maxsize=8)
def _disk_spectrum(radius_px: float, shape: tuple[int, int]) -> np.ndarray:
    """The real FFT, at the padded ``shape``, of the disk of ``radius_px`` (0/1 weights)."""
    reach = int(np.ceil(radius_px))
    offsets = np.arange(-reach, reach + 1)  # (2 reach + 1,)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius_px**2).astype(np.float64)
    spectrum = sp_fft.rfftn(disk, shape, axes=(0, 1))
    spectrum.flags.writeable = False
    return spectrum


def _disk_sums(dens: np.ndarray, radius_px: float) -> np.ndarray:
    """Each pixel's sum of ``dens`` over the disk of ``radius_px`` around it: the "same"-size
    FFT convolution of ``scipy.signal.fftconvolve`` (the same transforms, so the same bits),
    with the disk's spectrum cached across images of one size and both cores used."""
    reach = int(np.ceil(radius_px))
    full = [n + 2 * reach for n in dens.shape]  # (n + k - 1) with k = 2 reach + 1
    shape = tuple(sp_fft.next_fast_len(n, True) for n in full)
    product = sp_fft.rfftn(dens, shape, axes=(0, 1), workers=-1)
    product *= _disk_spectrum(radius_px, shape)
    out = sp_fft.irfftn(product, shape, axes=(0, 1), workers=-1)
    top, left = reach, reach  # the centred "same" block of the full convolution
    return out[top : top + dens.shape[0], left : left + dens.shape[1]]


def greedy_fixations(
    density: npt.ArrayLike, k: int, radius_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most likely fixation spots, chosen greedily with inhibition of return.

    The density is smoothed by summing it over a disk of ``radius_px``; each step takes the
    pixel where that disk holds the most mass, then excludes every point within
    ``2 * radius_px`` of it, so the chosen disks do not overlap. Returns the points (m, 2) as
    x, y pixel centers in order of choice, and each disk's mass (m,): the probability that a
    fixation drawn from the density lands within ``radius_px`` of the point. ``m < k`` when
    the rest of the image holds no mass.
    """
    if k < 1 or not radius_px > 0:
        raise ValueError(f"need k >= 1 and radius_px > 0, got k={k}, radius_px={radius_px}")
    dens = as_density(density)
    height, width = dens.shape
    # disk mass around every pixel; FFT rounding (~1e-17) must not make empty areas win
    smoothed = _disk_sums(dens, float(radius_px))  # (H, W)
    smoothed[smoothed < 1e-12] = 0.0
    span = int(np.ceil(2 * radius_px))  # only this window around a peak is touched
    points, probs = [], []
    # each row's maximum, kept up to date: the first row holding the largest and its first
    # column holding it are np.argmax(smoothed)'s pixel, without a pass over the image per step
    row_max = smoothed.max(axis=1)  # (H,)
    for _ in range(k):
        row = int(np.argmax(row_max))
        col = int(np.argmax(smoothed[row]))
        if not smoothed[row, col] > 0:
            break
        top, left = max(0, row - span), max(0, col - span)
        bottom, right = min(height, row + span + 1), min(width, col + span + 1)
        d2 = (np.arange(top, bottom)[:, None] - row) ** 2 + (
            np.arange(left, right)[None, :] - col
        ) ** 2  # (h, w) squared pixel distances in the window
        points.append((col + 0.5, row + 0.5))
        probs.append(float(dens[top:bottom, left:right][d2 <= radius_px**2].sum()))
        smoothed[top:bottom, left:right][d2 <= (2 * radius_px) ** 2] = -1.0
        row_max[top:bottom] = smoothed[top:bottom].max(axis=1)
    return np.array(points, dtype=np.float64).reshape(-1, 2), np.array(probs, dtype=np.float64)
