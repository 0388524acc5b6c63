"""SUM's objective: the paper's composite loss between the predicted density over the output
cells and the empirical density of the image's fixations there.

SUM (Hosseini et al., WACV 2025) trains with ``10 KL - 2 CC - SIM - NSS + 5 MSE``, the weights of
its official code (:data:`SUM_WEIGHTS`), each term a differentiable twin of a metric
(:mod:`salience.models.losses`). The empirical density is the fixations (all observers) counted
per cell and blurred by a Gaussian of ``sigma_cells`` (:func:`fixation_targets`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from salience.models.blur import gaussian_blur
from salience.models.losses import cc, kl_div, mse, nss, sim

#: SUM's loss weights: KL, CC, SIM, NSS, MSE (the signs make every term a cost).
SUM_WEIGHTS: dict[str, float] = {"kl": 10.0, "cc": -2.0, "sim": -1.0, "nss": -1.0, "mse": 5.0}


def fixation_targets(
    points: list[Tensor], size: tuple[int, int], sigma_cells: float
) -> tuple[Tensor, Tensor]:
    """Normalized (x, y) fixations per image -> fixation counts per cell (B, h, w) and their
    Gaussian-blurred, normalized empirical density (B, h, w); an image without fixations gets
    the uniform density."""
    height, width = size
    counts = torch.zeros(len(points), height * width, device=points[0].device)
    for b, p in enumerate(points):
        col = (p[:, 0] * width).long().clamp(0, width - 1)  # (M,)
        row = (p[:, 1] * height).long().clamp(0, height - 1)  # (M,)
        counts[b].index_add_(0, row * width + col, torch.ones_like(col, dtype=counts.dtype))
    counts = counts.view(-1, 1, height, width)  # (B, 1, h, w)
    radius = max(1, min(math.ceil(4 * sigma_cells), max(size) - 1))
    blurred = gaussian_blur(counts, torch.tensor(sigma_cells, device=counts.device), radius)
    blurred = blurred.flatten(1) + (counts.flatten(1).sum(1, keepdim=True) == 0)  # (B, h * w)
    density = blurred / blurred.sum(dim=1, keepdim=True)
    return counts.view(-1, height, width), density.view(-1, height, width)


def composite_loss(
    pred: Tensor,
    ref: Tensor,
    fixation_counts: Tensor,
    weights: dict[str, float] | None = None,
) -> dict[str, Tensor]:
    """SUM's loss: ``sum(weight * term)`` over KL, CC, SIM, NSS and MSE.

    ``pred`` is the predicted density (B, H, W), ``ref`` the empirical (blurred fixation) map and
    ``fixation_counts`` the fixations per pixel, both on the same grid. Returns every term and
    ``loss``, the weighted sum to minimize.
    """
    weights = SUM_WEIGHTS if weights is None else weights
    unknown = set(weights) - set(SUM_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {sorted(SUM_WEIGHTS)}")
    terms = {
        "kl": kl_div(pred, ref),
        "cc": cc(pred, ref),
        "sim": sim(pred, ref),
        "nss": nss(pred, fixation_counts),
        "mse": mse(pred, ref),
    }
    terms["loss"] = sum(w * terms[name] for name, w in weights.items() if w)
    return terms
