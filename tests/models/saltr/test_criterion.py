"""SetCriterion: values, equivalences, gradients, sequential matching; the density head's loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from salience.models.saltr import SaltrConfig, build_saltr, log_density
from salience.models.saltr.criterion import (
    SetCriterion,
    classification_loss,
    density_loss,
    point_loss,
)
from salience.models.saltr.matcher import HungarianMatcher, SequentialMatcher
from tests.models.saltr import TINY as SMALL

TINY = {**SMALL, "backbone": "tf_efficientnet_lite0", "num_queries": 6}


def _indices(*pairs):
    return [
        (torch.tensor(q, dtype=torch.int64), torch.tensor(t, dtype=torch.int64)) for q, t in pairs
    ]


def test_classification_loss_equals_weighted_two_class_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, generator=g, dtype=torch.float64)
    indices = _indices(([0, 3], [1, 0]), ([4], [0]))
    eos = 0.1
    loss = classification_loss(logits, indices, eos)
    # class 1 = fixation (logit s), class 0 = no fixation (logit 0): softmax gives sigmoid(s)
    two_class = torch.stack((torch.zeros_like(logits), logits), dim=-1).view(-1, 2)
    labels = torch.zeros(2, 5, dtype=torch.int64)
    labels[0, [0, 3]] = 1
    labels[1, 4] = 1
    ce = F.cross_entropy(
        two_class, labels.view(-1), weight=torch.tensor([eos, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(loss, ce)


def test_point_loss_is_mean_l1_over_matched_pairs():
    pred = torch.tensor([[[0.1, 0.2], [0.5, 0.5], [0.9, 0.9]]])
    targets = [torch.tensor([[0.5, 0.7], [0.2, 0.2]])]
    loss = point_loss(pred, targets, _indices(([0, 1], [1, 0])))
    expected = ((0.1 + 0.0) + (0.0 + 0.2)) / 2
    assert loss.item() == pytest.approx(expected)


def test_perfect_predictions_have_zero_point_loss():
    points = torch.rand(2, 4, 2)
    outputs = {"pred_points": points, "pred_logits": torch.zeros(2, 4), "aux_outputs": []}
    targets = [points[0, [2, 0]], points[1, [3, 1, 0]]]
    losses = SetCriterion()(outputs, targets)
    assert losses["loss_point"].item() == pytest.approx(0.0, abs=1e-7)


def test_keys_and_weighted_total():
    g = torch.Generator().manual_seed(1)

    def layer():
        return {
            "pred_points": torch.rand(2, 4, 2, generator=g),
            "pred_logits": torch.randn(2, 4, generator=g),
        }

    outputs = {**layer(), "aux_outputs": [layer(), layer()]}
    targets = [torch.rand(3, 2, generator=g), torch.rand(1, 2, generator=g)]
    criterion = SetCriterion(weight_point=5.0, weight_class=2.0)
    losses = criterion(outputs, targets)
    names = {
        "loss_class",
        "loss_point",
        "loss_class_0",
        "loss_point_0",
        "loss_class_1",
        "loss_point_1",
    }
    assert set(losses) == names | {"loss"}
    total = sum((2.0 if "class" in k else 5.0) * losses[k] for k in names)
    torch.testing.assert_close(losses["loss"], total)


def test_empty_targets_and_more_targets_than_queries():
    pred_logits = torch.randn(2, 3, requires_grad=True)
    pred_points = torch.rand(2, 3, 2, requires_grad=True)
    outputs = {"pred_points": pred_points, "pred_logits": pred_logits}
    targets = [torch.zeros(0, 2), torch.rand(10, 2)]
    losses = SetCriterion()(outputs, targets)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"])
    assert torch.isfinite(pred_points.grad).all() and torch.isfinite(pred_logits.grad).all()
    # image 0: every query is "no fixation"; image 1: every query is matched
    assert pred_points.grad[0].abs().sum() == 0
    assert (pred_logits.grad[0] > 0).all() and (pred_logits.grad[1] < 0).all()
    only_empty = SetCriterion()(
        {"pred_points": pred_points, "pred_logits": pred_logits}, [targets[0]] * 2
    )
    assert only_empty["loss_point"].item() == 0.0


def test_gradcheck_point_loss():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    targets = [
        torch.rand(2, 2, generator=g, dtype=torch.float64),
        torch.rand(4, 2, generator=g, dtype=torch.float64),
    ]
    indices = _indices(([2, 0], [0, 1]), ([0, 1, 2], [3, 0, 2]))
    assert torch.autograd.gradcheck(lambda p: point_loss(p, targets, indices), (pred,))


def test_gradcheck_classification_loss():
    logits = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    indices = _indices(([1], [0]), ([0, 2, 3], [0, 1, 2]))
    assert torch.autograd.gradcheck(lambda s: classification_loss(s, indices, 0.1), (logits,))


@pytest.mark.parametrize("attention", ["standard", "deformable"])
def test_gradients_reach_every_parameter_of_the_heads(attention):
    torch.manual_seed(0)
    model = build_saltr(SaltrConfig(attention=attention, **TINY))
    criterion = SetCriterion.from_config(model.config)
    images = torch.rand(2, 3, 64, 64)
    targets = [torch.rand(3, 2), torch.rand(9, 2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # The deformable head's last layer starts at zero (predictions start on the reference
    # points), which blocks gradients to the layers below it until the first update.
    for _ in range(2):
        optimizer.zero_grad()
        criterion(model(images), targets)["loss"].backward()
        for name, param in model.named_parameters():
            assert param.grad is not None, name
            assert torch.isfinite(param.grad).all(), name
        optimizer.step()
    for head in (model.class_head, model.point_head):
        for name, param in head.named_parameters():
            assert param.grad.abs().sum() > 0, name


def test_sequential_matching_pairs_by_index():
    points = torch.tensor([[[0.2, 0.2], [0.8, 0.8]]])
    outputs = {"pred_points": points, "pred_logits": torch.zeros(1, 2)}
    targets = [points[0].flip(0)]  # the same set, in the other order
    hungarian = SetCriterion()(outputs, targets)
    by_index = SetCriterion(SequentialMatcher())(outputs, targets)
    assert hungarian["loss_point"].item() == pytest.approx(0.0, abs=1e-7)
    assert by_index["loss_point"].item() == pytest.approx(1.2)


def test_sequential_matching_trains_queries_past_the_scanpath_as_no_fixation():
    logits = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    outputs = {"pred_points": torch.rand(1, 4, 2), "pred_logits": logits}
    losses = SetCriterion(SequentialMatcher(), no_fixation_weight=1.0)(outputs, [torch.rand(2, 2)])
    expected = F.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    torch.testing.assert_close(losses["loss_class"], expected)


def test_from_config_picks_matcher_and_weights():
    config = SaltrConfig(cost_point=2.0, cost_class=3.0, weight_point=4.0, no_fixation_weight=0.5)
    criterion = SetCriterion.from_config(config)
    assert isinstance(criterion.matcher, HungarianMatcher)
    assert (criterion.matcher.cost_point, criterion.matcher.cost_class) == (2.0, 3.0)
    assert (criterion.weight_point, criterion.no_fixation_weight) == (4.0, 0.5)
    sequential = SetCriterion.from_config(SaltrConfig(matching="sequential"))
    assert isinstance(sequential.matcher, SequentialMatcher)
    with pytest.raises(ValueError, match="matching"):
        SaltrConfig(matching="greedy")


def test_density_loss_is_the_likelihood_of_the_drawn_density():
    torch.manual_seed(0)
    size = (24, 32)
    outputs = {
        "pred_points": torch.rand(2, 5, 2, dtype=torch.float64),
        "pred_sigmas": torch.rand(2, 5, dtype=torch.float64) * 3 + 1,
        "pred_weights": torch.randn(2, 5, dtype=torch.float64),
    }
    fixations = [torch.rand(7, 2, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64)]
    loss = density_loss(outputs, fixations, size, floor_weight=0.05)
    drawn = log_density(
        outputs["pred_points"][:1],
        outputs["pred_weights"][:1].softmax(-1),
        size,
        sigma=outputs["pred_sigmas"][:1],
        floor_weight=0.05,
        normalize_each=True,
    )[0]
    col = (fixations[0][:, 0] * size[1]).long()
    row = (fixations[0][:, 1] * size[0]).long()
    expected = -(drawn[row, col] + math.log(size[0] * size[1])).mean()  # the empty image skipped
    torch.testing.assert_close(loss, expected.float())
    assert density_loss(outputs, [fixations[1]] * 2, size) == 0  # no fixations: zero


def test_density_head_starts_with_the_configs_sigma_and_equal_weights():
    config = SaltrConfig(**TINY, attention="deformable", density_head=True, sigma_px=7.0)
    model = build_saltr(config)
    outputs = model(torch.rand(2, 3, 64, 64))
    assert outputs["pred_sigmas"].shape == outputs["pred_weights"].shape == (2, 6)
    torch.testing.assert_close(outputs["pred_sigmas"], torch.full((2, 6), 7.0))
    assert (outputs["pred_weights"] == 0).all()
    assert "pred_sigmas" not in build_saltr(SaltrConfig(**TINY))(torch.rand(1, 3, 64, 64))
