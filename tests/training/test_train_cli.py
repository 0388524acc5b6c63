"""``salience train`` then ``salience eval --checkpoint`` end to end on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from salience.cli import app
from salience.models.registry import load_checkpoint
from salience.models.saltr import SaltrDensity
from tests.training.conftest import tiny_tree

runner = CliRunner()


def test_train_then_eval_with_checkpoint(small_osie, tmp_path):
    tree = tiny_tree(small_osie, tmp_path / "unused", n_train=4, val=True)
    tree["optim"]["backbone_lr"] = 0.0
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tree))
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(config), "train.epochs=1", "--device", "cpu", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "val IG" in result.output
    for name in ("best.safetensors", "last.safetensors", "config.yaml"):
        assert (out / name).is_file(), name
    assert len(list(out.glob("last.state-*.pt"))) == 1  # the state the last weights name
    (record,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"val/IG", "val/NSS", "val/AUC-Judd", "val/CC", "loss"} <= set(record)

    density = load_checkpoint(out / "best.safetensors")
    assert isinstance(density, SaltrDensity) and density.model.config.d_model == 32
    log_density = density.log_density(np.zeros((60, 80, 3), np.uint8), (60, 80))
    assert log_density.shape == (60, 80)
    assert np.exp(log_density).sum() == pytest.approx(1.0)
    points, probs = density.points(np.zeros((60, 80, 3), np.uint8), (60, 80))
    assert points.shape == (10, 2) and (np.diff(probs) <= 0).all()

    result = runner.invoke(
        app,
        [
            "eval", "--dataset", "osie", "--root", str(small_osie), "--split", "val",
            "-m", "center-bias", "--checkpoint", str(out / "best.safetensors"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "saltr-lite0" in result.output  # the checkpoint's row, named by its variant

    result = runner.invoke(app, ["train", str(config), "optim.lrr=1", "--out", str(out)])
    assert result.exit_code == 2 and "unknown key" in result.output
