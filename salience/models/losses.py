"""Differentiable twins of the saliency metrics, and SUM's composite loss built from them.

Each function takes a batch of maps (B, H, W) as torch tensors and returns the batch mean of the
per-image value that :mod:`salience.evaluation.metrics` computes on one image with numpy: the same
normalizations, the same epsilon, so a model trained on a term is trained on the metric it is
scored by (``tests/test_losses.py`` checks each against its metric on real fixations). They are
written for non-negative predicted maps (densities), which is what the models here produce; the
metrics' shift of maps with negative values is left out.

SUM (Hosseini et al., WACV 2025) trains with ``10 KL - 2 CC - SIM - NSS + 5 MSE``, the weights
of its official code (:data:`SUM_WEIGHTS`). The paper does not define its MSE term's scale; here
it compares the two maps each divided by its maximum, so the term does not vanish with the
number of pixels as it would between densities.
"""

from __future__ import annotations

import torch
from torch import Tensor

from salience.evaluation.metrics import MIT_EPS

#: SUM's loss weights: KL, CC, SIM, NSS, MSE (the signs make every term a cost).
SUM_WEIGHTS: dict[str, float] = {"kl": 10.0, "cc": -2.0, "sim": -1.0, "nss": -1.0, "mse": 5.0}


def _flat(maps: Tensor) -> Tensor:
    if maps.dim() != 3:
        raise ValueError(f"expected a batch of maps (B, H, W), got shape {tuple(maps.shape)}")
    return maps.flatten(1)  # (B, H * W)


def _as_distribution(maps: Tensor) -> Tensor:
    """Each non-negative map divided by its sum: (B, H * W)."""
    flat = _flat(maps)
    return flat / flat.sum(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)


def kl_div(pred: Tensor, ref: Tensor, eps: float = MIT_EPS) -> Tensor:
    """KL(ref || pred) of the maps as distributions, as :func:`salience.evaluation.metrics.kl_div`."""
    p, q = _as_distribution(pred), _as_distribution(ref)  # (B, N)
    return (q * torch.log(eps + q / (p + eps))).sum(dim=1).mean()


def cc(pred: Tensor, ref: Tensor) -> Tensor:
    """Pearson correlation of each pair of maps, as :func:`salience.evaluation.metrics.cc`."""
    a, b = _flat(pred), _flat(ref)
    a = a - a.mean(dim=1, keepdim=True)  # (B, N)
    b = b - b.mean(dim=1, keepdim=True)  # (B, N)
    denominator = (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt()  # (B,)
    return ((a * b).sum(dim=1) / denominator.clamp_min(torch.finfo(a.dtype).tiny)).mean()


def sim(pred: Tensor, ref: Tensor) -> Tensor:
    """Histogram intersection of the maps as distributions, as :func:`salience.evaluation.metrics.sim`."""
    return torch.minimum(_as_distribution(pred), _as_distribution(ref)).sum(dim=1).mean()


def nss(pred: Tensor, fixation_counts: Tensor) -> Tensor:
    """Mean standardized value of the map at the fixations, as :func:`salience.evaluation.metrics.nss`.

    ``fixation_counts`` (B, H, W) holds how many fixations fell on each pixel, so a pixel fixated
    twice counts twice, as there; images without fixations are left out of the mean.
    """
    smap, counts = _flat(pred), _flat(fixation_counts).to(pred.dtype)
    std = smap.std(dim=1, correction=0, keepdim=True)  # (B, 1)
    z = (smap - smap.mean(dim=1, keepdim=True)) / std.clamp_min(torch.finfo(smap.dtype).tiny)
    total = counts.sum(dim=1)  # (B,)
    keep = total > 0
    if not keep.any():
        return pred.sum() * 0.0
    return ((z * counts).sum(dim=1)[keep] / total[keep]).mean()


def mse(pred: Tensor, ref: Tensor) -> Tensor:
    """Mean squared difference of the two maps, each divided by its maximum."""
    a, b = _flat(pred), _flat(ref)
    a = a / a.amax(dim=1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
    b = b / b.amax(dim=1, keepdim=True).clamp_min(torch.finfo(b.dtype).tiny)
    return (a - b).square().mean()


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
