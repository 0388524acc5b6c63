"""Assignment of predicted fixations (queries) to ground-truth fixations.

Targets are a list with one (M_i, 2) tensor of normalized (x, y) fixations per image. A matcher
returns, per image, ``(query_indices, target_indices)``: two int64 tensors of equal length
``min(N, M_i)``, each query and each target used at most once. With more targets than queries,
the unmatched targets are ignored; with none, both tensors are empty.
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


class IndexMatcher(nn.Module):
    """Ablation without assignment: query i is paired with target i, for i < min(N, M).

    Targets arrive in data order (not sorted by location), so each query is pulled towards the
    average of the fixations that happen to land at its index; the paper reports that training
    without matching learns the dataset's center bias, which this reproduces.
    """

    def forward(self, outputs: dict, targets: list[Tensor]) -> Indices:
        """outputs: pred_points (B, N, 2); targets: [(M_i, 2)] -> indices (i, i)."""
        num_queries = outputs["pred_points"].shape[1]
        indices = []
        for target in targets:
            k = torch.arange(min(num_queries, len(target)), dtype=torch.int64)
            indices.append((k, k.clone()))
        return indices
