"""A trained SUM checkpoint as a density model: registry, Predictor and conditions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from salience.data.conditions import Condition
from salience.models.registry import load_checkpoint
from salience.models.sum import SumConfig, SumDensity, SumSaliency, checkpoint_metadata
from salience.predictor import Predictor

SMALL = SumConfig(
    encoder="lite0",
    dims=(16, 16, 16, 16),
    decoder_depths=(0, 1, 1, 1),
    d_state=4,
    ssm_ratio=1.0,
    token_dim=8,
    image_size=(64, 96),
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random SUM-Lite0 saved as ``salience train`` saves it, its conditions made distinct."""
    torch.manual_seed(0)
    model = SumSaliency(SMALL)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "token" in name or "modulation" in name:
                p.normal_(0, 1)  # distinct condition tokens, so the conditions differ
    path = tmp_path_factory.mktemp("sum") / "best.safetensors"
    metadata = {**checkpoint_metadata(model, "sum-lite0"), "conditions": '["mouse", "eye"]'}
    save_file(model.state_dict(), str(path), metadata=metadata)
    return path


def test_load_checkpoint_returns_a_density_for_a_trained_checkpoint(checkpoint):
    density = load_checkpoint(checkpoint, condition=Condition.MOUSE_NATURAL)
    assert isinstance(density, SumDensity)
    assert density.condition == Condition.MOUSE_NATURAL
    assert density.model.config.decoder_depths == (0, 1, 1, 1)
    assert load_checkpoint(checkpoint).condition == Condition.EYE_NATURAL  # the default
    with pytest.raises(ValueError, match=r"not trained on condition 'ui'.*mouse, eye"):
        load_checkpoint(checkpoint, condition="ui")


def test_predictor_runs_a_sum_checkpoint_per_condition(checkpoint, tiny_weights):
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    eye = Predictor.from_checkpoint(checkpoint).predict(image)
    mouse = Predictor.from_checkpoint(checkpoint, condition=Condition.MOUSE_NATURAL).predict(image)
    for result in (eye, mouse):
        assert result.log_density.shape == (90, 120)
        assert np.exp(result.log_density).sum() == pytest.approx(1.0, abs=1e-6)
    assert not np.allclose(eye.log_density, mouse.log_density)
    with pytest.raises(ValueError, match=r"not trained on condition 'mouse'.*trained on: eye"):
        Predictor.from_checkpoint(tiny_weights, condition=Condition.MOUSE_NATURAL)


def test_cli_predicts_and_scores_a_sum_checkpoint_per_condition(checkpoint, tmp_path):
    from typer.testing import CliRunner

    from salience.cli import app

    runner = CliRunner()
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
        image
    )
    maps = {}
    for kind in ("eye", "mouse"):
        out = tmp_path / kind
        args = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(out)]
        result = runner.invoke(app, [*args, "--condition", kind, "--scanpaths", "0"])
        assert result.exit_code == 0, result.output
        maps[kind] = np.load(out / "photo_density.npy")
        recorded = json.loads((out / "photo_fixations.json").read_text())["settings"]
        assert recorded["condition"] == kind
    assert not np.allclose(maps["eye"], maps["mouse"])

    shares = {}
    for kind in ("eye", "mouse"):  # aoi, scanpath and compare take the condition too
        args = ["aoi", str(image), "--region", "left:0,0,40,60", "--samples", "20"]
        out = tmp_path / f"aoi-{kind}"
        args += ["--checkpoint", str(checkpoint), "--condition", kind, "--out", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        shares[kind] = json.loads((out / "photo_aoi.json").read_text())["regions"][0]["share"]
    assert shares["eye"] != pytest.approx(shares["mouse"], abs=1e-6)
    refused = runner.invoke(app, [*args[:-4], "--condition", "ui", "--out", str(tmp_path / "ui")])
    assert refused.exit_code == 2
    assert "not trained on condition 'ui'" in refused.output and "Traceback" not in refused.output
    scanpath = tmp_path / "scanpath.png"
    args = ["scanpath", str(image), "--checkpoint", str(checkpoint), "--condition", "mouse"]
    assert runner.invoke(app, [*args, "--out", str(scanpath)]).exit_code == 0
    assert scanpath.is_file()

    result = runner.invoke(app, ["predict", str(image), "--condition", "sideways"])
    assert result.exit_code == 2 and "unknown condition 'sideways'" in result.output
    assert "mouse, eye, ui" in result.output
    result = runner.invoke(app, ["predict", str(image), "--condition", "mouse"])  # the default
    assert result.exit_code == 2 and "not trained on condition 'mouse'" in result.output
