"""The whole loop learns: a tiny SalTR overfits four real OSIE images."""

from __future__ import annotations

import json

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from salience.data import load_dataset
from salience.training.checkpoint import load_weights
from salience.training.data import FixationDataset
from salience.training.loop import Trainer
from salience.training.task import create_task
from tests.training.conftest import tiny_config


def _matched_distance(model, images, targets) -> float:
    """Mean L1 distance (normalized units) between the targets and their matched predictions."""
    with torch.no_grad():
        points = model(images)["pred_points"]  # (B, N, 2)
    distances = []
    for pred, target in zip(points, targets, strict=True):
        cost = torch.cdist(target, pred, p=1).numpy()  # (M, N)
        rows, cols = linear_sum_assignment(cost)
        distances.append(cost[rows, cols].mean())
    return float(np.mean(distances))


def test_tiny_saltr_overfits_four_images(small_osie, tmp_path):
    config = tiny_config(
        small_osie,
        tmp_path,
        data={"augment": {"hflip": 0.0, "scale": (1.0, 1.0)}, "cache_features": True},
        model={"targets": "kmeans"},  # fixed targets: 10 centroids of each image's fixations
        optim={"lr": 3e-3, "backbone_lr": 0.0, "clip_grad": 1.0},
        schedule={"warmup_steps": 0},
        train={"epochs": 80, "batch_size": 4, "checkpoint_every": 1000, "log_every": 0},
    )
    config.model.overrides["dropout"] = 0.0
    summary = Trainer(config).fit()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert summary["steps"] == 80 and len(log) == 80
    for key, factor in [("loss", 0.7), ("loss_point", 0.4)]:  # soft class targets keep a floor
        first = np.mean([r[key] for r in log[:3]])
        last = np.mean([r[key] for r in log[-3:]])
        assert last < factor * first, (key, first, last)

    # the same initial model the trainer built, before and after training
    torch.manual_seed(config.train.seed)
    task = create_task(config.model, config.data.input_size)
    model = task.build_model().eval()
    data = load_dataset("osie", small_osie).split("train")
    dataset = FixationDataset([data.subset(data.ids[:4])], (96, 128), task.make_targets)
    samples = [dataset[i] for i in range(4)]
    images = torch.stack([s["image"] for s in samples])
    targets = [s["points"] for s in samples]
    before = _matched_distance(model, images, targets)
    tensors, _ = load_weights(tmp_path / "last.safetensors")
    model.load_state_dict(tensors)
    after = _matched_distance(model, images, targets)
    assert after < 0.6 * before, (before, after)
