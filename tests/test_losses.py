"""The differentiable loss terms agree with the numpy metrics on real OSIE fixations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salience.evaluation import metrics
from salience.models import losses
from salience.models.sum import criterion

SIZE = (60, 80)  # a training-grid size: (height, width)


@pytest.fixture(scope="module")
def real_maps(osie):
    """Per image of OSIE val: fixations rescaled to SIZE, their counts, their empirical density,
    and two predicted maps (a center bias and a blurred map of other images' fixations)."""
    val = osie.split("val")
    out = []
    for k, stimulus in enumerate(val.stimuli[:6]):
        xs, ys = stimulus.fixations()
        xs, ys = metrics.rescale_fixations(xs, ys, (stimulus.height, stimulus.width), SIZE)
        other_x, other_y = val.stimuli[k + 10].fixations()
        other_x, other_y = metrics.rescale_fixations(
            other_x, other_y, (val.stimuli[k + 10].height, val.stimuli[k + 10].width), SIZE
        )
        out.append(
            {
                "xs": xs,
                "ys": ys,
                "counts": metrics.fixation_map(xs, ys, SIZE),
                "ref": metrics.empirical_density(xs, ys, SIZE, sigma_px=2.5),
                "center": metrics.center_bias_density(SIZE, 0.2, 0.25),
                "other": metrics.empirical_density(other_x, other_y, SIZE, sigma_px=4.0),
            }
        )
    return out


def _batch(maps: list[dict], key: str) -> torch.Tensor:
    return torch.tensor(np.stack([m[key] for m in maps]), dtype=torch.float64)


@pytest.mark.parametrize("pred_key", ["center", "other"])
def test_terms_equal_the_metrics_on_real_fixations(real_maps, pred_key):
    pred, ref, counts = (_batch(real_maps, k) for k in (pred_key, "ref", "counts"))
    want = {
        "kl": np.mean([metrics.kl_div(m[pred_key], m["ref"]) for m in real_maps]),
        "cc": np.mean([metrics.cc(m[pred_key], m["ref"]) for m in real_maps]),
        "sim": np.mean([metrics.sim(m[pred_key], m["ref"]) for m in real_maps]),
        "nss": np.mean([metrics.nss(m[pred_key], m["xs"], m["ys"]) for m in real_maps]),
    }
    got = {
        "kl": losses.kl_div(pred, ref),
        "cc": losses.cc(pred, ref),
        "sim": losses.sim(pred, ref),
        "nss": losses.nss(pred, counts),
    }
    for name, value in want.items():
        assert got[name].item() == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_terms_do_not_depend_on_the_maps_scale(real_maps):
    pred, ref, counts = (_batch(real_maps, k) for k in ("other", "ref", "counts"))
    for term in (losses.kl_div, losses.cc, losses.sim, losses.mse):
        assert term(pred * 7.0, ref * 0.1).item() == pytest.approx(term(pred, ref).item())
    assert losses.nss(pred * 3.0, counts).item() == pytest.approx(losses.nss(pred, counts).item())


def test_mse_compares_maps_scaled_to_their_maximum():
    pred = torch.tensor([[[1.0, 2.0], [0.0, 4.0]]])
    ref = torch.tensor([[[2.0, 2.0], [2.0, 2.0]]])
    want = np.mean((np.array([0.25, 0.5, 0.0, 1.0]) - 1.0) ** 2)
    assert losses.mse(pred, ref).item() == pytest.approx(want)
    assert losses.mse(ref, ref).item() == 0.0


def test_composite_loss_weights_the_terms_and_has_gradients(real_maps):
    ref, counts = _batch(real_maps, "ref"), _batch(real_maps, "counts")
    generator = torch.Generator().manual_seed(0)
    start = 0.1 * torch.randn(ref.shape, dtype=torch.float64, generator=generator)
    logits = start.clone().requires_grad_(True)
    pred = torch.softmax(logits.flatten(1), dim=1).view_as(logits)
    terms = criterion.composite_loss(pred, ref, counts)
    want = sum(w * terms[name] for name, w in criterion.SUM_WEIGHTS.items())
    assert terms["loss"].item() == pytest.approx(want.item())
    terms["loss"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # a few steps of gradient descent on the loss move the prediction toward the reference
    logits = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    first = None
    for _ in range(30):
        pred = torch.softmax(logits.flatten(1), dim=1).view_as(logits)
        terms = criterion.composite_loss(pred, ref, counts)
        first = terms["cc"].item() if first is None else first
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    assert terms["cc"].item() > first + 0.3


def test_nss_skips_images_without_fixations_and_bad_shapes_raise():
    pred = torch.rand(2, 4, 5)
    counts = torch.zeros(2, 4, 5)
    counts[0, 1, 2] = 2
    want = metrics.nss(pred[0].numpy().astype(np.float64), [2.5, 2.5], [1.5, 1.5])
    assert losses.nss(pred, counts).item() == pytest.approx(want, rel=1e-5)
    assert losses.nss(pred, torch.zeros(2, 4, 5)).item() == 0.0
    with pytest.raises(ValueError, match="B, H, W"):
        losses.cc(torch.rand(4, 5), torch.rand(4, 5))
    with pytest.raises(ValueError, match="unknown loss terms"):
        criterion.composite_loss(pred, pred, counts, weights={"bce": 1.0})
