"""Hungarian matching against brute force over all one-to-one assignments."""

import itertools

import pytest
import torch

from salience.models.saltr.matcher import (
    HungarianMatcher,
    SequentialMatcher,
    build_matcher,
    matching_cost,
)


def _brute_force_cost(cost: torch.Tensor) -> float:
    """Least total cost of pairing min(N, M) queries and targets, each used at most once."""
    n, m = cost.shape
    if m == 0:
        return 0.0
    if n >= m:  # each target gets a distinct query
        return min(
            sum(cost[q, t].item() for t, q in enumerate(perm))
            for perm in itertools.permutations(range(n), m)
        )
    return min(  # each query gets a distinct target
        sum(cost[q, t].item() for q, t in enumerate(perm))
        for perm in itertools.permutations(range(m), n)
    )


def _outputs(n: int, batch: int = 1, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "pred_points": torch.rand(batch, n, 2, generator=g, dtype=torch.float64),
        "pred_logits": torch.randn(batch, n, generator=g, dtype=torch.float64),
    }


def _check_valid(query, target, n, m):
    assert query.dtype == target.dtype == torch.int64
    assert len(query) == len(target) == min(n, m)
    assert len(set(query.tolist())) == len(query)
    assert len(set(target.tolist())) == len(target)
    assert all(0 <= q < n for q in query.tolist())
    assert all(0 <= t < m for t in target.tolist())


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("m", [0, 1, 2, 4, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hungarian_is_optimal(n, m, seed):
    outputs = _outputs(n, seed=seed)
    target = torch.rand(m, 2, generator=torch.Generator().manual_seed(100 + seed))
    matcher = HungarianMatcher(cost_point=5.0, cost_class=1.0)
    [(query, tgt)] = matcher(outputs, [target])
    _check_valid(query, tgt, n, m)
    cost = matching_cost(outputs["pred_points"][0], outputs["pred_logits"][0], target, 5.0, 1.0)
    assert cost[query, tgt].sum().item() == pytest.approx(_brute_force_cost(cost), abs=1e-9)


def test_empty_targets_give_empty_matches():
    outputs = _outputs(4, batch=2)
    indices = HungarianMatcher()(outputs, [torch.zeros(0, 2), torch.rand(3, 2)])
    assert [len(q) for q, _ in indices] == [0, 3]
    assert indices[0][0].dtype == indices[0][1].dtype == torch.int64


def test_more_targets_than_queries_uses_each_query_once():
    outputs = _outputs(3)
    target = torch.rand(50, 2, generator=torch.Generator().manual_seed(7))
    [(query, tgt)] = HungarianMatcher()(outputs, [target])
    _check_valid(query, tgt, 3, 50)
    assert sorted(query.tolist()) == [0, 1, 2]


def test_matching_recovers_a_permutation():
    points = torch.tensor([[0.1, 0.1], [0.9, 0.2], [0.5, 0.8], [0.3, 0.6]])
    perm = torch.tensor([2, 0, 3, 1])
    outputs = {"pred_points": points[None], "pred_logits": torch.zeros(1, 4)}
    [(query, tgt)] = HungarianMatcher()(outputs, [points[perm]])
    # target t equals query perm[t]
    assert dict(zip(tgt.tolist(), query.tolist(), strict=True)) == dict(enumerate(perm.tolist()))


def test_batch_of_mixed_sizes():
    outputs = _outputs(4, batch=3, seed=3)
    targets = [torch.rand(2, 2), torch.zeros(0, 2), torch.rand(9, 2)]
    indices = HungarianMatcher()(outputs, targets)
    for (query, tgt), target in zip(indices, targets, strict=True):
        _check_valid(query, tgt, 4, len(target))


def test_matching_cost_formula():
    points = torch.tensor([[0.0, 0.0], [0.5, 0.5]])
    logits = torch.tensor([0.0, 2.0])
    target = torch.tensor([[1.0, 0.5]])
    cost = matching_cost(points, logits, target, cost_point=2.0, cost_class=3.0)
    expected = torch.tensor(
        [[2.0 * 1.5 - 3.0 * 0.5], [2.0 * 0.5 - 3.0 * torch.sigmoid(torch.tensor(2.0))]]
    )
    torch.testing.assert_close(cost, expected)


def test_sequential_matcher_pairs_query_i_with_target_i():
    outputs = _outputs(4, batch=3)
    indices = SequentialMatcher()(outputs, [torch.rand(2, 2), torch.zeros(0, 2), torch.rand(7, 2)])
    assert [q.tolist() for q, _ in indices] == [[0, 1], [], [0, 1, 2, 3]]
    assert all(torch.equal(q, t) for q, t in indices)  # the first 4 of 7 targets, in order


def test_sequential_matcher_ignores_where_the_queries_are():
    # the Hungarian matcher would pair each query with the target on it; sequential keeps order
    points = torch.tensor([[[0.1, 0.1], [0.9, 0.9]]])
    outputs = {"pred_points": points, "pred_logits": torch.zeros(1, 2)}
    targets = [points[0].flip(0)]
    ((q, t),) = HungarianMatcher()(outputs, targets)
    assert dict(zip(q.tolist(), t.tolist(), strict=True)) == {0: 1, 1: 0}
    ((q, t),) = SequentialMatcher()(outputs, targets)
    assert q.tolist() == t.tolist() == [0, 1]


def test_build_matcher():
    hungarian = build_matcher("hungarian", cost_point=2.0, cost_class=3.0)
    assert isinstance(hungarian, HungarianMatcher)
    assert (hungarian.cost_point, hungarian.cost_class) == (2.0, 3.0)
    assert isinstance(build_matcher("sequential"), SequentialMatcher)
    with pytest.raises(ValueError, match="matching"):
        build_matcher("greedy")
