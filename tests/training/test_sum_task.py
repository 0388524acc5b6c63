"""SUM's training task: conditions from the sources, SUM's loss, cached features, a real run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salience.data.conditions import Condition
from salience.evaluation.metrics import empirical_density, fixation_map
from salience.models.sum import SumDensity, criterion
from salience.models.sum.criterion import fixation_targets
from salience.training.config import ModelConfig
from salience.training.loop import Trainer
from salience.training.sum import SumTask
from tests.training.conftest import tiny_config

TINY_SUM = {
    "encoder_pretrained": False,
    "dims": (16, 16, 16, 16),
    "decoder_depths": (1, 1, 1, 1),
    "d_state": 4,
    "token_dim": 8,
}


def _task(size=(64, 96)) -> SumTask:
    config = ModelConfig(name="sum-lite0", overrides=dict(TINY_SUM))
    return SumTask(config, size, conditions=[0, None])  # mouse and eye tracking sources


def test_fixation_targets_are_the_blurred_empirical_density():
    points = [torch.tensor([[0.45, 0.5], [0.45, 0.5], [0.7, 0.6]]), torch.zeros(0, 2)]
    counts, density = fixation_targets(points, (12, 16), sigma_cells=1.0)
    xs, ys = np.array([7.2, 7.2, 11.2]), np.array([6.0, 6.0, 7.2])
    np.testing.assert_array_equal(counts[0].numpy(), fixation_map(xs, ys, (12, 16)))
    # kernels that stay inside the map: border handling (reflect in both) plays no part
    want = empirical_density(xs, ys, (12, 16), sigma_px=1.0, truncate=4.0)
    np.testing.assert_allclose(density[0].numpy(), want, atol=3e-5)  # float32
    assert density[0].sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(density[1], torch.full((12, 16), 1 / 192))
    assert counts[1].sum() == 0


def test_conditions_reach_the_model_and_the_loss_trains_the_tokens():
    torch.manual_seed(0)
    task = _task()
    model = task.build_model()
    images = torch.rand(2, 3, 64, 96)
    batch = {"image": images, "condition": [0, None], "points": [torch.rand(5, 2)] * 2}
    assert task.conditions(batch, images.device).tolist() == [0, int(Condition.EYE_NATURAL)]
    out = task.forward(model, batch)
    terms = task.loss(out, batch)
    want = criterion.composite_loss(
        out["log_density"].exp(),
        fixation_targets(batch["points"], (16, 24), task.target_sigma * 24)[1],
        fixation_targets(batch["points"], (16, 24), task.target_sigma * 24)[0],
    )["loss"]
    torch.testing.assert_close(terms["loss"], want)
    assert {"kl", "cc", "sim", "nss", "mse", "nll_bits"} <= set(terms)
    terms["loss"].backward()
    tokens = [m.tokens.weight.grad for m in model.modules() if hasattr(m, "tokens")]
    assert tokens and all(g[[0, 1]].abs().sum() > 0 for g in tokens)
    assert all(g[[2, 3]].abs().sum() == 0 for g in tokens)  # conditions not in the batch


def test_forward_from_cached_features_equals_forward_from_images():
    torch.manual_seed(0)
    task = _task()
    model = task.build_model().eval()
    images = torch.rand(2, 3, 64, 96)
    batch = {"image": images, "condition": [1, 0]}
    direct = task.forward(model, batch)["log_density"]
    cached = task.forward_features(model, task.encode(model, images), batch)["log_density"]
    torch.testing.assert_close(direct, cached)
    names = [n for n, _ in model.named_parameters() if task.is_backbone(n)]
    assert names and all(n.startswith("encoder.backbone.") for n in names)


def test_density_is_conditioned_and_sums_to_one():
    torch.manual_seed(0)
    model = _task().build_model()
    for block in model.modules():  # make the condition matter at initialization
        if hasattr(block, "tokens"):
            block.tokens.weight.data.normal_(0, 3.0)
    image = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    eye = SumDensity(model, condition=Condition.EYE_NATURAL).log_density(image, (60, 90))
    trained = {"conditions": '["mouse", "eye"]'}  # what a run on both kinds records
    mouse = SumDensity(model, trained, Condition.MOUSE_NATURAL).log_density(image, (60, 90))
    assert eye.shape == (60, 90) and np.exp(eye).sum() == pytest.approx(1.0)
    assert np.abs(eye - mouse).max() > 1e-6  # a fresh model is nearly flat: small but real


def test_a_conditioned_run_trains_validates_and_reloads(small_osie, tmp_path):
    config = tiny_config(
        small_osie,
        tmp_path / "run",
        val=True,
        model={"name": "sum-lite0", "overrides": dict(TINY_SUM)},
        optim={"backbone_lr": 0.0},
        train={"epochs": 1},
        data={"augment": {"hflip": 0.5, "scale": [1.0, 1.0]}, "cache_features": True},
    )
    mouse = config.data.train[0].__class__(
        name="osie", root=str(small_osie), split="train", limit=2, condition=0
    )
    config.data.train.append(mouse)
    config.data.val.condition = 1
    summary = Trainer(config).fit()
    assert summary["epochs"] == 1
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert np.isfinite(record["val/IG"]) and np.isfinite(record["kl"])
    density = SumDensity.from_checkpoint(tmp_path / "run" / "best.safetensors", condition=0)
    assert density.model.config.dims == (16, 16, 16, 16)
    assert density.condition == Condition.MOUSE_NATURAL
