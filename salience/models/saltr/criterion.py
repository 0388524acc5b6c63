"""SalTR's set loss: match queries to fixations, then classify every query and regress the matched
points, on the final decoder layer and on each auxiliary (earlier) one.

Classification is binary cross-entropy on the fixation logit: matched queries are fixations,
all others "no fixation", down-weighted by ``no_fixation_weight`` and normalized by the total
weight (the same as DETR's two-class cross-entropy with ``eos_coef``). The point loss is L1 in
normalized coordinates, summed over x and y and averaged over the matched pairs of the batch.

:func:`weighted_set_loss` generalizes it to weighted targets (a cluster's relative size, for
targets summarized by k-means): a matched query's fixation target is its point's weight and its
L1 point loss is scaled by that weight; with all weights 1 it equals :class:`SetCriterion`.

:func:`density_loss` trains the density head (``SaltrConfig.density_head``): the negative
log-likelihood of all of an image's fixations under the mixture its queries predict, the
density the model is then evaluated with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.matcher import HungarianMatcher, Indices, build_matcher
from salience.models.saltr.postprocess import center_bias_prior, gaussian_profiles


def _flat_indices(indices: Indices) -> tuple[Tensor, Tensor]:
    """Per-image (query, target) indices -> (image index, query index) of all matched queries."""
    batch = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
    query = torch.cat([q for q, _ in indices])
    return batch, query


def classification_loss(pred_logits: Tensor, indices: Indices, no_fixation_weight: float) -> Tensor:
    """Weighted BCE of (B, N) logits against "matched" (1) / "unmatched" (0)."""
    batch, query = _flat_indices(indices)
    target = torch.zeros_like(pred_logits)  # (B, N)
    target[batch.to(target.device), query.to(target.device)] = 1.0
    weight = torch.where(target > 0, 1.0, no_fixation_weight)  # (B, N)
    bce = F.binary_cross_entropy_with_logits(pred_logits, target, reduction="none")  # (B, N)
    return (weight * bce).sum() / weight.sum()


def point_loss(pred_points: Tensor, targets: list[Tensor], indices: Indices) -> Tensor:
    """L1 between matched (B, N, 2) predictions and their targets, per matched pair."""
    batch, query = _flat_indices(indices)
    matched = pred_points[batch.to(pred_points.device), query.to(pred_points.device)]  # (K, 2)
    target = torch.cat([t[j.to(t.device)] for t, (_, j) in zip(targets, indices, strict=True)]).to(
        matched
    )  # (K, 2)
    return (matched - target).abs().sum() / max(len(matched), 1)


class SetCriterion(nn.Module):
    """The SalTR loss. ``forward(outputs, targets)`` returns named losses and their weighted sum.

    Keys: ``loss_class`` and ``loss_point`` for the final layer, ``loss_class_{i}`` and
    ``loss_point_{i}`` for auxiliary layer i, and ``loss``, the weighted total to optimize.
    Each layer is matched on its own predictions, by ``matcher`` (default: Hungarian with the
    default costs; :class:`~salience.models.saltr.matcher.SequentialMatcher` pairs query i with
    target i, for scanpaths and the paper's ablation without matching).
    """

    def __init__(
        self,
        matcher: nn.Module | None = None,
        weight_point: float = 5.0,
        weight_class: float = 1.0,
        no_fixation_weight: float = 0.1,
    ) -> None:
        super().__init__()
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.weight_point = weight_point
        self.weight_class = weight_class
        self.no_fixation_weight = no_fixation_weight

    @classmethod
    def from_config(cls, config: SaltrConfig) -> SetCriterion:
        """The criterion with the config's matching mode, costs and weights."""
        return cls(
            build_matcher(config.matching, config.cost_point, config.cost_class),
            weight_point=config.weight_point,
            weight_class=config.weight_class,
            no_fixation_weight=config.no_fixation_weight,
        )

    def forward(self, outputs: dict, targets: list[Tensor]) -> dict[str, Tensor]:
        """outputs: the model's dict; targets: [(M_i, 2)] normalized fixations per image."""
        layers = [("", outputs)]
        layers += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs", []))]
        losses: dict[str, Tensor] = {}
        total = outputs["pred_logits"].new_zeros(())
        for suffix, layer_outputs in layers:
            indices = self.matcher(layer_outputs, targets)
            loss_class = classification_loss(
                layer_outputs["pred_logits"], indices, self.no_fixation_weight
            )
            loss_point = point_loss(layer_outputs["pred_points"], targets, indices)
            losses[f"loss_class{suffix}"] = loss_class
            losses[f"loss_point{suffix}"] = loss_point
            total = total + self.weight_class * loss_class + self.weight_point * loss_point
        losses["loss"] = total
        return losses


def weighted_set_loss(
    criterion: SetCriterion,
    outputs: dict,
    points: list[Tensor],
    weights: list[Tensor],
    denominators: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """SetCriterion's losses (same keys) with per-target weights; each layer matched on its own.

    Each layer's two losses divide a sum over the batch by a count: the total classification
    weight and the matched pairs. ``denominators``, if given, maps these (2,) counts to the
    ones to divide by instead (in data-parallel training: the whole global batch's, divided by
    the number of processes, so that the averaged gradients equal one process's).
    """
    layers = [("", outputs)]
    layers += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs", []))]
    losses: dict[str, Tensor] = {}
    total = outputs["pred_logits"].new_zeros((), dtype=torch.float32)
    for suffix, layer in layers:
        logits = layer["pred_logits"].float()  # (B, N)
        pred = layer["pred_points"].float()  # (B, N, 2)
        indices = criterion.matcher({"pred_points": pred, "pred_logits": logits}, points)
        batch = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])  # (K,)
        query = torch.cat([q for q, _ in indices]).to(logits.device)  # (K,)
        batch = batch.to(logits.device)
        target_points = torch.cat(
            [p[j.to(p.device)] for p, (_, j) in zip(points, indices, strict=True)]
        )
        target_weights = torch.cat(
            [w[j.to(w.device)] for w, (_, j) in zip(weights, indices, strict=True)]
        )
        target = torch.zeros_like(logits)  # (B, N)
        target[batch, query] = target_weights.to(logits)
        bce_weight = torch.full_like(logits, criterion.no_fixation_weight)  # (B, N)
        bce_weight[batch, query] = 1.0
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # (B, N)
        l1 = (pred[batch, query] - target_points.to(pred)).abs().sum(-1)  # (K,)
        counts = torch.stack([bce_weight.sum(), bce_weight.new_tensor(float(len(l1)))])  # (2,)
        weight_total, pairs = counts if denominators is None else denominators(counts)
        loss_class = (bce_weight * bce).sum() / weight_total
        # no pair anywhere: every point sum is 0, and 0 / 1 keeps it so
        loss_point = (l1 * target_weights.to(l1)).sum() / torch.where(pairs > 0, pairs, 1.0)
        losses[f"loss_class{suffix}"] = loss_class
        losses[f"loss_point{suffix}"] = loss_point
        total = total + criterion.weight_class * loss_class + criterion.weight_point * loss_point
    losses["loss"] = total
    return losses


def density_loss(
    outputs: dict, fixations: list[Tensor], size: tuple[int, int], floor_weight: float = 1e-2
) -> Tensor:
    """Negative log-likelihood of each image's fixations under the predicted density, in nats
    per fixation relative to a uniform density, averaged over the images that have fixations.

    The density is the one :func:`~salience.models.saltr.postprocess.log_density` draws with
    ``normalize_each`` at the input ``size``: the queries' Gaussians (``pred_sigmas`` pixels
    wide), each summing to 1 over the pixels, weighted by ``softmax(pred_weights)``, mixed with
    the center-bias floor. ``fixations``: per image (M, 2) normalized (x, y); each counts at its
    pixel's center. Only the final layer has the head.
    """
    height, width = size
    points = outputs["pred_points"].float()  # (B, N, 2)
    sigmas = outputs["pred_sigmas"].float()  # (B, N)
    weights = outputs["pred_weights"].float().softmax(-1)  # (B, N)
    gx = gaussian_profiles(points[..., 0] * width, sigmas, width, normalize=True)  # (B, N, W)
    gy = gaussian_profiles(points[..., 1] * height, sigmas, height, normalize=True)  # (B, N, H)
    prior = center_bias_prior(size, device=points.device, dtype=points.dtype)  # (H, W)
    terms = []
    for b, fix in enumerate(fixations):
        if len(fix) == 0:
            continue
        fix = fix.to(points)
        col = (fix[:, 0] * width).floor().long().clamp(0, width - 1)  # (M,)
        row = (fix[:, 1] * height).floor().long().clamp(0, height - 1)  # (M,)
        mixture = weights[b] @ (gx[b][:, col] * gy[b][:, row])  # (M,)
        density = (1.0 - floor_weight) * mixture + floor_weight * prior[row, col]  # (M,)
        terms.append(-(density * (height * width)).log().mean())
    if not terms:  # no fixations in the batch: zero, still part of the graph
        return 0.0 * (points.sum() + sigmas.sum() + weights.sum())
    return torch.stack(terms).mean()
