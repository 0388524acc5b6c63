"""Assignment of predicted fixations (queries) to ground-truth fixations.

Targets are a list with one (M_i, 2) tensor of normalized (x, y) fixations per image. A matcher
returns, per image, ``(query_indices, target_indices)``: two int64 tensors of equal length
``min(N, M_i)``, each query and each target used at most once. With more targets than queries,
the unmatched targets are ignored; with none, both tensors are empty.

Two modes (``SaltrConfig.matching``): :class:`HungarianMatcher`, the paper's set prediction, and
:class:`SequentialMatcher`, query i with target i, for ordered (scanpath) decoding.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

Indices = list[tuple[Tensor, Tensor]]


def matching_cost(
    pred_points: Tensor,
    pred_logits: Tensor,
    target_points: Tensor,
    cost_point: float = 5.0,
    cost_class: float = 1.0,
) -> Tensor:
    """Cost of pairing each query with each target: (N, 2), (N,), (M, 2) -> (N, M).

    ``cost_point * |p - t|_1 - cost_class * P(fixation)``: near points are cheap, and confident
    queries are preferred.
    """
    distance = torch.cdist(pred_points, target_points.to(pred_points), p=1)  # (N, M)
    prob = pred_logits.sigmoid()  # (N,)
    return cost_point * distance - cost_class * prob[:, None]  # (N, M)


class HungarianMatcher(nn.Module):
    """One-to-one matching of minimal total :func:`matching_cost`, per image (scipy's solver)."""

    def __init__(self, cost_point: float = 5.0, cost_class: float = 1.0) -> None:
        super().__init__()
        self.cost_point = cost_point
        self.cost_class = cost_class

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[Tensor]) -> Indices:
        """outputs: pred_points (B, N, 2), pred_logits (B, N); targets: [(M_i, 2)] -> indices."""
        indices = []
        for points, logits, target in zip(
            outputs["pred_points"], outputs["pred_logits"], targets, strict=True
        ):
            if len(target) == 0:
                empty = torch.empty(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            cost = matching_cost(points, logits, target, self.cost_point, self.cost_class)
            rows, cols = linear_sum_assignment(cost.double().cpu().numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return indices


class SequentialMatcher(nn.Module):
    """Query i is paired with target point i, for i < min(N, M): ordered decoding.

    The target's order is the order the queries learn. With one observer's scanpath in viewing
    order (target kind ``scanpath``), query i learns the i-th fixation and, through the
    unmatched queries being "no fixation", the probability that a scanpath is longer than i:
    SalTR's scanpath variant. It is also the paper's ablation without matching ("no-matching" in
    ``benchmarks/saltr_ablations.py``): each query is pulled towards the average of whatever
    lands at its index, which for a saliency map collapses to the dataset's center bias.
    """

    def forward(self, outputs: dict, targets: list[Tensor]) -> Indices:
        """outputs: pred_points (B, N, 2); targets: [(M_i, 2)] -> indices (i, i)."""
        num_queries = outputs["pred_points"].shape[1]
        indices = []
        for target in targets:
            k = torch.arange(min(num_queries, len(target)), dtype=torch.int64)
            indices.append((k, k.clone()))
        return indices


def build_matcher(
    matching: str, cost_point: float = 5.0, cost_class: float = 1.0
) -> HungarianMatcher | SequentialMatcher:
    """The matcher of a :class:`SaltrConfig` ``matching`` mode (costs: Hungarian only)."""
    if matching == "hungarian":
        return HungarianMatcher(cost_point, cost_class)
    if matching == "sequential":
        return SequentialMatcher()
    raise ValueError(f"matching must be 'hungarian' or 'sequential', got {matching!r}")
