"""From an image's pooled human fixations to a target of at most K weighted points for SalTR.

An OSIE image has about 140 fixations pooled over 15 observers, more than SalTR's 100 queries, so
the target must be formed per training step. Four ways (``model.targets``):

- ``subsample``: a fresh random subset of at most K pooled fixations each step; over the epochs
  every fixation is seen and the set stays an unbiased sample of the pooled distribution.
- ``observer``: one random observer's scanpath (about 10 points): what one person looked at;
  a scanpath longer than K is subsampled like ``subsample`` (order kept, but not its start).
- ``scanpath``: one random observer's scanpath, its first K fixations in viewing order: the
  ordered target of sequential matching (SalTR's scanpath variant), where point i is the i-th
  fixation.
- ``kmeans``: the pooled fixations clustered into at most K centroids, each weighted by its share
  of fixations; deterministic given the augmentation, nothing is dropped.

Inputs and outputs are normalized (x, y) in [0, 1]; weights are relative (the largest is 1), so
unweighted targets have all weights 1. An image without fixations gives an empty set.

Order: the pooled points arrive observer after observer, each scanpath in viewing order
(``Stimulus.fixations`` and ``FixationDataset`` keep it; augmentation only drops fixations that
leave a crop), and ``observer``, ``scanpath`` and ``subsample`` keep the order they select in.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2

TARGET_KINDS = ("subsample", "observer", "scanpath", "kmeans")


def form_targets(
    points: np.ndarray,
    observers: np.ndarray,
    kind: str,
    max_points: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(M, 2) points and (M,) observer indices -> (K, 2) float32 points, (K,) float32 weights."""
    if kind not in TARGET_KINDS:
        raise ValueError(f"target kind must be one of {TARGET_KINDS}, got {kind!r}")
    if len(points) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    if kind in ("observer", "scanpath"):
        chosen = rng.choice(np.unique(observers))
        points = points[observers == chosen]  # (M', 2) in viewing order
        if kind == "scanpath":
            points = points[:max_points]
            return points.astype(np.float32), np.ones(len(points), np.float32)
        kind = "subsample"  # one scanpath can still exceed K
    if len(points) <= max_points:
        return points.astype(np.float32), np.ones(len(points), np.float32)
    if kind == "subsample":
        keep = rng.choice(len(points), size=max_points, replace=False)
        return points[np.sort(keep)].astype(np.float32), np.ones(max_points, np.float32)
    return _kmeans(points, max_points, rng)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster into at most ``k`` centroids (k-means++ start); empty clusters are dropped."""
    centroids, labels = kmeans2(points.astype(np.float64), k, minit="++", seed=rng)
    counts = np.bincount(labels, minlength=k)  # (k,)
    used = counts > 0
    weights = counts[used] / counts.max()
    return centroids[used].astype(np.float32), weights.astype(np.float32)
