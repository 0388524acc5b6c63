"""Checkpoints are written atomically, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salience.training import checkpoint
from salience.training.checkpoint import (
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
    state_path,
    weights_path,
)
from salience.training.loop import Trainer
from tests.training.conftest import tiny_config


def _model(value: float) -> nn.Module:
    model = nn.Linear(3, 2)
    nn.init.constant_(model.weight, value)
    return model


def test_failed_weight_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_weights(path, _model(1.0), {"step": "1"})

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_weights(path, _model(2.0), {"step": "2"})
    tensors, metadata = load_weights(path)
    assert metadata["step"] == "1" and (tensors["weight"] == 1.0).all()
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary left


def test_failed_state_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, "last", _model(1.0), {}, {"step": 5})

    def broken(obj, f, *args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(checkpoint.torch, "save", broken)
    with pytest.raises(RuntimeError, match="killed"):
        save_checkpoint(tmp_path, "last", _model(2.0), {}, {"step": 6})
    monkeypatch.undo()
    model = _model(0.0)
    assert load_checkpoint(tmp_path, "last", model)["step"] == 5
    assert (model.weight == 1.0).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors", "last.state.pt"]


def test_mismatched_pair_is_refused(tmp_path):
    save_checkpoint(tmp_path, "last", _model(1.0), {}, {"step": 5})
    save_weights(weights_path(tmp_path, "last"), _model(2.0), {"step": "6"})
    with pytest.raises(RuntimeError, match="interrupted while saving"):
        load_checkpoint(tmp_path, "last", _model(0.0))
    assert state_path(tmp_path, "last").is_file()


# stop inside the second epoch with the backbone training, and at its end with it frozen
@pytest.mark.parametrize(("stop_at", "backbone_lr"), [(3, 1e-4), (4, 0.0)])
def test_resume_equals_uninterrupted(small_osie, tmp_path, stop_at, backbone_lr):
    # 4 images, batch 2: 2 steps per epoch, 3 epochs; dropout, flips, zooms and target
    # subsampling all draw random numbers, so any RNG that is not restored shows up
    overrides = {**tiny_config(small_osie, tmp_path).model.overrides}
    sections = {
        "model": {"overrides": {**overrides, "dropout": 0.1, "num_queries": 5}},
        "optim": {"backbone_lr": backbone_lr},
        "train": {"epochs": 3},
    }
    straight = Trainer(tiny_config(small_osie, tmp_path / "a", **sections)).fit()
    assert straight["steps"] == 6
    stopped_sections = {**sections, "train": {"epochs": 3, "max_steps": stop_at}}
    first = Trainer(tiny_config(small_osie, tmp_path / "b", **stopped_sections)).fit()
    assert first["steps"] == stop_at
    resumed = Trainer(tiny_config(small_osie, tmp_path / "b", **sections), resume=True).fit()
    assert resumed["steps"] == 6
    a, _ = load_weights(tmp_path / "a" / "last.safetensors")
    b, _ = load_weights(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert a["class_head.weight"].abs().sum() > 0
