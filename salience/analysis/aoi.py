"""Attention per region of interest: how much of a saliency density falls in each region, and how
likely a viewer's first few fixations are to land in it.

Two numbers per region answer different questions. The *share* is the density's mass inside the
region, i.e. the fraction of all fixations expected there, and *lift* relates it to the region's
size (``share / area_fraction``: 1 means no more attention than its area earns). ``p_first_k`` is
the probability that at least one of the first ``k`` fixations lands in the region, estimated from
scanpaths drawn by a :class:`~salience.models.sampler.ScanpathSampler` (with a 95 % Wilson interval
for the sampling error, which says nothing about the model's own error), and ``mean_first_index``
the mean 1-based number of the first fixation in the region among the scanpaths that reach it.

:func:`analyze` reports one image; :func:`compare` two variants of a design (A and B) with
deltas ``B - A``. Both draw scanpaths with the same seed, so the variants share their random
numbers and a delta reflects the densities, not sampling luck (swapping A and B negates every
delta exactly). Reports write JSON and CSV atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from salience.analysis.regions import Region, RegionError, check_regions, region_masks
from salience.io.atomic import atomic_write
from salience.models.sampler import Scanpaths, ScanpathSampler, as_density, default_ppd

#: Two-sided 95 % standard-normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes.
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p = successes / n
    z2 = z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True)
class RegionShare:
    """A region's share of the density, its fraction of the image area, and their ratio."""

    name: str
    share: float
    area_fraction: float
    lift: float


def _shares(
    density: np.ndarray, regions: Sequence[Region], masks: Sequence[np.ndarray]
) -> list[RegionShare]:
    shares = []
    for region, mask in zip(regions, masks, strict=True):
        share, area = float(density[mask].sum()), float(mask.mean())  # masks are never empty
        shares.append(RegionShare(region.name, share, area, share / area))
    return shares


def attention_shares(density: npt.ArrayLike, regions: Sequence[Region]) -> list[RegionShare]:
    """Per region, the density's mass inside it (the density is scaled to sum 1 first)."""
    dens = as_density(density)
    regions = check_regions(regions)
    return _shares(dens, regions, region_masks(regions, dens.shape))


@dataclass(frozen=True)
class FirstHit:
    """How often sampled scanpaths reach a region within their first ``k`` fixations."""

    probability: float
    low: float  # 95 % Wilson interval
    high: float
    hits: int
    n: int
    mean_first_index: float | None  # 1-based; None when no scanpath reaches the region


def first_fixation_probability(
    scanpaths: Scanpaths, masks: Sequence[np.ndarray], k: int
) -> list[FirstHit]:
    """Per mask (bool (H, W)), the fraction of scanpaths with one of the first ``k`` fixations in
    it.

    A fixation at (x, y) is in the mask when pixel ``(floor(y), floor(x))`` is.
    """
    n, length = scanpaths.x.shape
    if not 1 <= k <= length:
        raise ValueError(f"k must lie in [1, {length}] (the scanpath length), got {k}")
    results = []
    for mask in masks:
        height, width = mask.shape
        cols = np.clip(np.floor(scanpaths.x[:, :k]).astype(np.intp), 0, width - 1)  # (n, k)
        rows = np.clip(np.floor(scanpaths.y[:, :k]).astype(np.intp), 0, height - 1)  # (n, k)
        inside = mask[rows, cols]  # (n, k)
        reached = inside.any(axis=1)  # (n,)
        hits = int(reached.sum())
        first = inside[reached].argmax(axis=1) + 1  # (hits,) 1-based
        low, high = wilson_interval(hits, n)
        results.append(
            FirstHit(hits / n, low, high, hits, n, float(first.mean()) if hits else None)
        )
    return results


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class AoiRow:
    """One region's numbers in an :class:`AoiReport` (module docstring defines them)."""

    region: str
    area_fraction: float
    share: float
    lift: float
    p_first_k: float
    p_first_k_low: float
    p_first_k_high: float
    mean_first_index: float | None


_METRICS = ("area_fraction", "share", "lift", "p_first_k", "mean_first_index")


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with floats written as ``repr`` (exact round trip) and None as an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            ["" if v is None else repr(float(v)) if isinstance(v, float) else v for v in row]
        )
    return out.getvalue()


def _write(
    report: AoiReport | ComparisonReport, json_path: str | Path, csv_path: str | Path | None
) -> None:
    atomic_write(json_path, report.to_json())
    if csv_path is not None:
        atomic_write(csv_path, report.to_csv())


@dataclass(frozen=True)
class AoiReport:
    """Attention per region on one image, with what produced it."""

    rows: tuple[AoiRow, ...]
    image_size: tuple[int, int]  # (height, width)
    ppd: float
    k: int
    n: int
    seed: int
    sampler: str  # the sampler's ``fitted_on``

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the settings, then one object per region (keys as in the CSV)."""
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rows"}
        meta["image_size"] = list(self.image_size)
        return {**meta, "regions": [asdict(row) for row in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        """One line per region; floats exact (``repr``), an empty cell for None."""
        header = [f.name for f in fields(AoiRow)]
        return _csv_text(header, [[getattr(r, h) for h in header] for r in self.rows])

    def write(self, json_path: str | Path, csv_path: str | Path | None = None) -> None:
        """Write the JSON (and the CSV, if a path is given), each atomically."""
        _write(self, json_path, csv_path)


def analyze(
    density: npt.ArrayLike,
    regions: Sequence[Region],
    sampler: ScanpathSampler,
    ppd: float | None = None,
    k: int = 3,
    n: int = 1000,
    seed: int = 0,
) -> AoiReport:
    """Shares, lift and first-``k``-fixation probabilities of each region on one image.

    ``ppd``: pixels per degree of the image as viewed (default
    :func:`~salience.models.sampler.default_ppd`); ``n`` scanpaths of ``k`` fixations drawn with
    ``seed``.
    """
    dens = as_density(density)
    regions = check_regions(regions)
    ppd = default_ppd(dens.shape) if ppd is None else float(ppd)
    masks = region_masks(regions, dens.shape)
    shares = _shares(dens, regions, masks)
    hits = first_fixation_probability(sampler.sample(dens, n, k, seed, ppd), masks, k)
    rows = tuple(
        AoiRow(
            s.name,
            s.area_fraction,
            s.share,
            s.lift,
            h.probability,
            h.low,
            h.high,
            h.mean_first_index,
        )
        for s, h in zip(shares, hits, strict=True)
    )
    height, width = dens.shape
    return AoiReport(rows, (height, width), ppd, k, n, seed, sampler.fitted_on)


# --------------------------------------------------------------------------- comparison


def _resample_axis(density: np.ndarray, n_target: int, axis: int) -> np.ndarray:
    """Mass of a piecewise-constant density in ``n_target`` equal bins along ``axis``.

    Exact: the cumulative mass is piecewise linear in the coordinate, so each new bin's mass is
    a difference of two interpolated cumulative values.
    """
    d = np.moveaxis(density, axis, 0)  # (n, m)
    n = len(d)
    cumulative = np.concatenate([np.zeros((1, d.shape[1])), np.cumsum(d, axis=0)])  # (n + 1, m)
    edges = np.linspace(0.0, n, n_target + 1)  # (n_target + 1,) in source pixels
    index = np.minimum(edges.astype(np.intp), n - 1)  # (n_target + 1,)
    at_edges = cumulative[index] + (edges - index)[:, None] * d[index]  # (n_target + 1, m)
    return np.moveaxis(np.clip(np.diff(at_edges, axis=0), 0.0, None), 0, axis)


def resample_density(density: npt.ArrayLike, size: tuple[int, int]) -> np.ndarray:
    """A density over the same image area on a grid of ``size == (height, width)``, summing to 1.

    Mass-preserving (each new pixel gets the mass of the area it covers); aspect-ratio changes
    stretch, as the image itself would be stretched.
    """
    dens = as_density(density)
    height, width = size
    out = _resample_axis(_resample_axis(dens, height, 0), width, 1)  # (height, width)
    return out / out.sum()


@dataclass(frozen=True)
class ComparisonReport:
    """Two :class:`AoiReport` s of the same regions, their deltas ``B - A``, and the density
    difference ``B - A`` on a common grid (float64 (H, W), sums to 0)."""

    a: AoiReport
    b: AoiReport
    difference: np.ndarray  # (H, W)

    def deltas(self) -> list[dict[str, Any]]:
        """Per region: each metric for A, B and B - A (None where either value is None)."""
        out = []
        for row_a, row_b in zip(self.a.rows, self.b.rows, strict=True):
            entry: dict[str, Any] = {"region": row_a.region}
            for metric in _METRICS:
                va, vb = getattr(row_a, metric), getattr(row_b, metric)
                entry[f"{metric}_a"] = va
                entry[f"{metric}_b"] = vb
                entry[f"{metric}_delta"] = None if va is None or vb is None else vb - va
            out.append(entry)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: both reports in full, the difference map's size, and the deltas."""
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "difference_size": list(self.difference.shape),
            "regions": self.deltas(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        """One line per region: each metric for A, B and the delta."""
        rows = self.deltas()
        header = list(rows[0])
        return _csv_text(header, [[row[h] for h in header] for row in rows])

    def write(self, json_path: str | Path, csv_path: str | Path | None = None) -> None:
        """Write the JSON (and the CSV, if a path is given), each atomically."""
        _write(self, json_path, csv_path)


def compare(
    density_a: npt.ArrayLike,
    density_b: npt.ArrayLike,
    regions: Sequence[Region],
    sampler: ScanpathSampler,
    ppd_a: float | None = None,
    ppd_b: float | None = None,
    k: int = 3,
    n: int = 1000,
    seed: int = 0,
) -> ComparisonReport:
    """Compare two images (e.g. design variants) region by region; deltas are ``B - A``.

    Images of different sizes need regions in fractions of width and height (pixel regions
    would mean different places); the difference map is then computed on the larger height and
    width, both densities resampled there (mass-preserving). ``ppd_a``, ``ppd_b`` as in
    :func:`analyze`.
    """
    dens_a, dens_b = as_density(density_a, "density A"), as_density(density_b, "density B")
    regions = check_regions(regions)
    if dens_a.shape != dens_b.shape:
        pixel_regions = [r.name for r in regions if not r.normalized]
        if pixel_regions:
            (ha, wa), (hb, wb) = dens_a.shape, dens_b.shape
            raise RegionError(
                f"images differ in size ({wa}x{ha} vs {wb}x{hb}): regions {pixel_regions} are in "
                "pixels, which mean different places on the two; give them as fractions of "
                "width and height (e.g. logo:0.1,0.2,0.3,0.1 or units 'fraction' in JSON)"
            )
    report_a = analyze(dens_a, regions, sampler, ppd_a, k, n, seed)
    report_b = analyze(dens_b, regions, sampler, ppd_b, k, n, seed)
    common = tuple(max(a, b) for a, b in zip(dens_a.shape, dens_b.shape, strict=True))
    if dens_a.shape != common:
        dens_a = resample_density(dens_a, common)
    if dens_b.shape != common:
        dens_b = resample_density(dens_b, common)
    return ComparisonReport(report_a, report_b, dens_b - dens_a)
