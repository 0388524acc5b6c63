"""Dense models with viewing-time windows: config, dwell targets, the weighted loss, model.init."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from salience.models.dense import DenseConfig, DenseDensity, DenseSaliency, checkpoint_metadata
from salience.models.dense.windows import WindowedDensity
from salience.training.checkpoint import load_weights
from salience.training.config import AugmentConfig, ModelConfig
from salience.training.data import FixationDataset
from salience.training.dense import DenseTask
from salience.training.export import export_weights
from salience.training.loop import Trainer, _load_init
from tests.training.conftest import tiny_config

WINDOWS = [[0, 1], [1, 2], [2, 3]]
TINY = {"backbone_pretrained": False, "readouts": 3, "windows": WINDOWS}


def _task(**overrides) -> DenseTask:
    task = DenseTask(ModelConfig(name="dense-lite0", overrides={**TINY, **overrides}), (96, 128))
    task.build_model()
    return task


def test_window_config_checks():
    assert DenseConfig(backbone_pretrained=False, windows=[[0, 1]]).windows == ((0.0, 1.0),)
    with pytest.raises(ValueError, match="readouts=2"):
        DenseConfig(backbone_pretrained=False, windows=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match="ensemble_loss"):
        DenseConfig(readouts=2, ensemble_loss="mixture", windows=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match="start < end"):
        DenseConfig(backbone_pretrained=False, windows=((1, 1),))


def test_dwell_targets_of_real_osie_images(osie):
    task = _task()
    assert task.needs_times and [w.label for w in task.windows] == ["0-1s", "1-2s", "2-3s"]
    train = osie.split("train")
    data = train.subset(train.ids[:3])
    dataset = FixationDataset(
        [data], (96, 128), task.make_targets, AugmentConfig(hflip=1.0), with_times=True
    )
    for i, stim in enumerate(data):
        sample = dataset[i]
        want = []  # OSIE has no onsets: each fixation starts when the earlier ones ended
        for path in stim.scanpaths:
            onset = 0.0
            for duration in path.duration:
                end = onset + duration
                want.append([max(0.0, min(end, b) - max(onset, a)) for a, b in WINDOWS])
                onset = end
        assert sample["flip"] and sample["points"].shape == (len(want), 2)
        np.testing.assert_allclose(sample["dwell"].numpy(), want, atol=1e-6)
    with pytest.raises(ValueError, match="times"):
        task.make_targets(np.zeros((2, 2)), np.zeros(2, int), np.random.default_rng(0))


def test_each_window_readout_learns_from_its_dwell_weighted_fixations():
    task = _task(readouts=2, windows=[[0, 1], [1, 3]])
    torch.manual_seed(0)
    members = torch.randn(2, 2, 6, 8).flatten(2).log_softmax(-1).view(2, 2, 6, 8)
    points = [torch.rand(5, 2), torch.rand(3, 2)]
    dwell = [torch.tensor([[0.2, 0], [0, 0.5], [0.1, 0.1], [0, 0], [0.3, 0]]), torch.zeros(3, 2)]
    outputs = {"member_log_densities": members, "log_density": members.logsumexp(1)}
    loss = task.loss(outputs, {"points": points, "dwell": dwell})["loss"].item()
    want = []  # per window, the dwell-weighted mean -log2(p / uniform) of images with dwell
    for k in range(2):
        per_image = []
        for b in range(2):
            w = dwell[b][:, k].numpy()
            if w.sum() == 0:
                continue
            cols = (points[b][:, 0] * 8).long().numpy()
            rows = (points[b][:, 1] * 6).long().numpy()
            log_p = members[b, k].numpy()[rows, cols] + np.log(48)
            per_image.append(-(w * log_p).sum() / w.sum() / np.log(2))
        want.append(np.mean(per_image))
    assert loss == pytest.approx(np.mean(want), rel=1e-5)


def test_a_window_run_starts_from_init_and_keeps_the_backbone(small_osie, tmp_path):
    overrides = {**TINY, "readouts": 2, "windows": [[0, 1], [1, 3]], "dropout": 0.0}
    torch.manual_seed(0)
    start = DenseSaliency(DenseConfig(**overrides, image_size=(96, 128)))
    init = tmp_path / "init.safetensors"
    save_file(start.state_dict(), str(init), metadata=checkpoint_metadata(start, "dense-lite0"))
    config = tiny_config(
        small_osie,
        tmp_path / "run",
        model={"name": "dense-lite0", "overrides": overrides, "init": str(init)},
        optim={"backbone_lr": 0.0, "lr": 1e-2},
        data={"augment": {"hflip": 0.5, "scale": [1.0, 1.0]}, "cache_features": True},
        train={"epochs": 1},
    )
    Trainer(config).fit()
    trained, _ = load_weights(tmp_path / "run" / "last.safetensors")
    for name, value in start.state_dict().items():
        if name.startswith("backbone."):
            assert torch.equal(trained[name], value), name
    assert any(
        not torch.equal(trained[n], v) for n, v in start.state_dict().items() if "readouts" in n
    )
    # its readouts ship on their own and run on the backbone they were trained on
    readouts = export_weights(
        tmp_path / "run" / "last.safetensors", tmp_path / "readouts.safetensors", readouts_only=True
    )
    WindowedDensity.from_file(readouts, DenseDensity(start))

    other = DenseSaliency(DenseConfig(backbone_pretrained=False))  # one readout: does not fit
    with pytest.raises(ValueError, match="does not fit"):
        _load_init(other, str(init))
