"""Checkpoints are one atomic unit, damaged ones are named, and a resumed run equals an
uninterrupted one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from salience.models.metadata import CheckpointError
from salience.training import checkpoint
from salience.training.checkpoint import (
    has_checkpoint,
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


class _Killed(BaseException):
    """The process dying: not an Exception, so no handler takes it for a write error."""


# every call that makes or removes a file while a checkpoint is saved
_BOUNDARIES = [
    (checkpoint.torch, "save"),
    (checkpoint, "save_file"),
    (os, "replace"),
    (Path, "chmod"),
    (Path, "unlink"),
]


def _kill_at(monkeypatch, n: int | None) -> list[int]:
    """Make the ``n``-th boundary call (0-based) and every later one die; count calls."""
    calls = [0]
    for owner, attr in _BOUNDARIES:
        original = getattr(owner, attr)

        def wrapped(*args, _original=original, **kwargs):
            calls[0] += 1
            if n is not None and calls[0] > n:
                raise _Killed  # once dead, nothing more runs (no cleanup either)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, attr, wrapped)
    return calls


def _boundaries_of_one_save(tmp_path) -> int:
    save_checkpoint(tmp_path, "last", _model(1.0), {}, {"step": 5})
    with pytest.MonkeyPatch.context() as patch:
        calls = _kill_at(patch, None)
        save_checkpoint(tmp_path, "last", _model(2.0), {}, {"step": 6})
    return calls[0]


def test_a_kill_at_any_write_leaves_the_old_or_the_new_checkpoint(tmp_path):
    total = _boundaries_of_one_save(tmp_path / "count")
    assert total >= 6  # state write and rename, weights write and rename, cleanup
    seen = set()
    for n in range(total + 1):
        run = tmp_path / f"kill-{n}"
        save_checkpoint(run, "last", _model(1.0), {}, {"step": 5})
        with pytest.MonkeyPatch.context() as patch:
            _kill_at(patch, n)
            try:
                save_checkpoint(run, "last", _model(2.0), {}, {"step": 6})
            except _Killed:
                pass
        model = _model(0.0)
        step = load_checkpoint(run, "last", model)["step"]
        assert step in (5, 6), n
        assert (model.weight == {5: 1.0, 6: 2.0}[step]).all(), n  # weights and state agree
        seen.add(step)
        # resuming is never wedged: the next save and load work and leave no debris
        save_checkpoint(run, "last", _model(3.0), {}, {"step": 7})
        assert load_checkpoint(run, "last", _model(0.0))["step"] == 7
        names = sorted(p.name for p in run.iterdir())
        assert names[0] == "last.safetensors" and len(names) == 2, names
        assert names[1].startswith("last.state-7-"), names
    assert seen == {5, 6}  # the kill points cover both outcomes


def test_a_kill_before_the_commit_resumes_from_the_previous_checkpoint(small_osie, tmp_path):
    run = tmp_path / "run"
    first = Trainer(tiny_config(small_osie, run, train={"epochs": 1, "max_steps": 1})).fit()
    assert first["steps"] == 1
    # the next save dies after writing its state file, while writing the weights (boundaries:
    # state saved, chmod, renamed, its temporary's cleanup; then the weights' save_file)
    with pytest.MonkeyPatch.context() as patch:
        _kill_at(patch, 4)
        with pytest.raises(_Killed):
            save_checkpoint(run, "last", _model(9.0), {}, {"step": 2})
    assert len(list(run.glob("last.state-*.pt"))) == 2  # the dead save's state is there too
    assert list(run.glob(".last.*.tmp*"))  # and its half-written weights
    resumed = Trainer(tiny_config(small_osie, run, train={"epochs": 1}), resume=True).fit()
    assert resumed["steps"] == 2
    assert len(list(run.glob("last.state-*.pt"))) == 1 and not list(run.glob(".last.*"))


def test_legacy_pair_of_the_same_step_loads_and_a_mismatch_is_refused(tmp_path):
    save_weights(weights_path(tmp_path, "last"), _model(1.0), {"step": "5"})
    torch.save({"step": 5, "rng": {}}, tmp_path / "last.state.pt")
    assert state_path(tmp_path, "last") == tmp_path / "last.state.pt"
    assert load_checkpoint(tmp_path, "last", _model(0.0))["step"] == 5
    save_weights(weights_path(tmp_path, "last"), _model(2.0), {"step": "6"})
    with pytest.raises(CheckpointError, match="interrupted while saving"):
        load_checkpoint(tmp_path, "last", _model(0.0))


def test_damaged_checkpoints_are_named(tmp_path):
    save_checkpoint(tmp_path, "last", _model(1.0), {}, {"step": 5})
    state = state_path(tmp_path, "last")
    state.write_bytes(state.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=rf"{state.name}: not a readable training state"):
        load_checkpoint(tmp_path, "last", _model(0.0))
    state.unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        load_checkpoint(tmp_path, "last", _model(0.0))
    assert has_checkpoint(tmp_path, "last")  # so --resume reports it instead of starting over
    weights = weights_path(tmp_path, "last")
    weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last\.safetensors: not a readable safetensors"):
        load_checkpoint(tmp_path, "last", _model(0.0))


def test_weights_of_another_model_are_named_without_a_key_dump(tmp_path):
    save_checkpoint(tmp_path, "last", nn.Linear(4, 2), {}, {"step": 1})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path, "last", _model(0.0))
    message = str(info.value)
    assert "last.safetensors" in message and "another shape" in message
    assert "\n" not in message
    save_file({"other": torch.zeros(2)}, str(tmp_path / "x.safetensors"), metadata={"step": "1"})
    torch.save({"step": 1}, tmp_path / "x.state.pt")
    with pytest.raises(CheckpointError, match=r"2 missing .*1 unexpected"):
        load_checkpoint(tmp_path, "x", _model(0.0))


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
