"""Is model B better than model A on these images, or is the difference noise?

Two models scored on the same images differ per image; the mean of those differences is the
gain, and its uncertainty comes from which images happened to be in the split. This module gives,
per metric, the mean paired difference (B - A), its standard error over images and a percentile
bootstrap interval (images resampled with replacement, the same draw for every metric), so that a
difference smaller than the noise is not read as a gain. Both results must cover the same images
(the per-image values that ``salience eval --out`` writes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PerImage = Mapping[str, Mapping[str, float]]  # image id -> metric -> value


@dataclass(frozen=True)
class PairedDifference:
    """B - A on one metric: the mean over ``n`` images, its standard error, a bootstrap
    interval at ``level``."""

    metric: str
    n: int
    mean: float
    se: float
    low: float
    high: float
    level: float

    @property
    def clear(self) -> bool:
        """Whether the interval leaves out 0 (the sign of the difference is not noise)."""
        return self.low > 0 or self.high < 0


def paired_differences(
    a: PerImage,
    b: PerImage,
    metrics: Sequence[str],
    level: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    common: bool = False,
) -> list[PairedDifference]:
    """Per metric the paired difference ``b - a`` over the images both score (see the module
    docstring); a ValueError if they do not score the same images, unless ``common``: then over
    the images they share (e.g. one fold of a cross-validation against all of them)."""
    if common:
        shared = set(a) & set(b)
        if not shared:
            raise ValueError("the two results share no image")
        a, b = {i: a[i] for i in shared}, {i: b[i] for i in shared}
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise ValueError(
            f"the two results score different images ({len(only)} in one only, e.g. {only[:3]})"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ids = sorted(a)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), (n_boot, len(ids)))  # shared by the metrics
    tail = (1 - level) / 2 * 100
    found = []
    for metric in metrics:
        diff = np.array([b[i][metric] - a[i][metric] for i in ids], dtype=np.float64)
        finite = np.isfinite(diff)
        diff = diff[finite]  # e.g. sAUC is undefined on an image with no negatives
        n = len(diff)
        if n < 2:
            mean = float(diff.mean()) if n else math.nan
            found.append(PairedDifference(metric, n, mean, math.nan, math.nan, math.nan, level))
            continue
        picks = draws if finite.all() else rng.integers(0, n, (n_boot, n))
        low, high = np.percentile(diff[picks].mean(axis=1), [tail, 100 - tail])
        se = float(diff.std(ddof=1) / math.sqrt(n))
        found.append(
            PairedDifference(metric, n, float(diff.mean()), se, float(low), float(high), level)
        )
    return found


def read_per_image(path: Path, model: str | None = None) -> tuple[str, PerImage]:
    """A model's per-image values from a results file of ``salience eval --out`` (``model``: its
    row's name; may be left out when the file has one row)."""
    try:
        payload = json.loads(Path(path).read_text())
        rows = payload["results"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a results file of 'salience eval --out' ({exc})") from exc
    names = [row.get("model") for row in rows]
    if model is None:
        if len(rows) != 1:
            raise ValueError(f"{path}: holds {', '.join(map(str, names))}: say which model")
        return names[0], rows[0]["per_image"]
    for row in rows:
        if row.get("model") == model:
            return model, row["per_image"]
    raise ValueError(f"{path}: no model {model!r} (it holds {', '.join(map(str, names))})")
