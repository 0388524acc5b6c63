"""Differentiable twins of the saliency metrics, the losses model families train with.

Each function takes a batch of maps (B, H, W) as torch tensors and returns the batch mean of the
per-image value that :mod:`salience.evaluation.metrics` computes on one image with numpy: the same
normalizations, the same epsilon, so a model trained on a term is trained on the metric it is
scored by (``tests/test_losses.py`` checks each against its metric on real fixations). They are
written for non-negative predicted maps (densities), which is what the models here produce; the
metrics' shift of maps with negative values is left out.

:func:`fixation_nll_bits` is the twin of the log-likelihood (and of information gain against a
uniform density), in bits per fixation. :func:`mse` has no metric twin: it compares the two maps
each divided by its maximum (SUM's MSE term, whose scale the paper leaves open), so it does not
vanish with the number of pixels as it would between densities.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# The MIT benchmark's epsilon in KL, as salience.evaluation.metrics.MIT_EPS (a test checks they
# are equal; the model layer does not import the evaluation layer).
MIT_EPS = 2.2204e-16


def _flat(maps: Tensor) -> Tensor:
    if maps.dim() != 3:
        raise ValueError(f"expected a batch of maps (B, H, W), got shape {tuple(maps.shape)}")
    return maps.flatten(1)  # (B, H * W)


def _as_distribution(maps: Tensor) -> Tensor:
    """Each non-negative map divided by its sum: (B, H * W)."""
    flat = _flat(maps)
    return flat / flat.sum(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)


def kl_div(pred: Tensor, ref: Tensor, eps: float = MIT_EPS) -> Tensor:
    """KL(ref || pred) of the maps as distributions, as
    :func:`salience.evaluation.metrics.kl_div`."""
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
    """Histogram intersection of the maps as distributions, as
    :func:`salience.evaluation.metrics.sim`."""
    return torch.minimum(_as_distribution(pred), _as_distribution(ref)).sum(dim=1).mean()


def nss(pred: Tensor, fixation_counts: Tensor) -> Tensor:
    """Mean standardized value of the map at the fixations, as
    :func:`salience.evaluation.metrics.nss`.

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


def fixation_nll_bits(
    log_density: Tensor, points: list[Tensor], weights: list[Tensor] | None = None
) -> Tensor:
    """Mean over images of the mean negative log-likelihood of their fixations, in bits per
    fixation relative to a uniform density (so 0 is chance, lower is better).

    ``log_density`` (B, h, w) is over output cells; ``points`` holds per image (M_b, 2)
    normalized (x, y) in [0, 1); ``weights``, if given, per image (M_b,) weights >= 0 of the
    fixations in their image's mean (e.g. dwell times). Images without fixations (or weight)
    do not count.
    """
    _, height, width = log_density.shape
    flat = log_density.flatten(1)  # (B, h * w)
    losses = []
    for b, p in enumerate(points):
        w = torch.ones(len(p), device=p.device) if weights is None else weights[b].float()  # (M,)
        if not w.sum() > 0:
            continue
        col = (p[:, 0] * width).long().clamp(0, width - 1)  # (M,)
        row = (p[:, 1] * height).long().clamp(0, height - 1)  # (M,)
        log_p = flat[b, row * width + col] + math.log(height * width)  # (M,) nats vs uniform
        losses.append(-(w * log_p).sum() / w.sum() / math.log(2))
    if not losses:
        return log_density.sum() * 0.0
    return torch.stack(losses).mean()
