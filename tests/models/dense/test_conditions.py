"""A condition's prior beside a dense checkpoint: loaded for that condition only, checked,
fitted."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from salience.data.conditions import Condition, condition_path
from salience.models.dense import DenseConfig, DenseSaliency
from salience.models.dense.conditions import write_condition_priors
from salience.models.metadata import CheckpointError, read_metadata
from salience.models.registry import load_checkpoint
from salience.predictor import Predictor
from salience.training.condition_prior import Viewport, cross_validate, fit, log_likelihood


@pytest.fixture()
def checkpoint(tiny_weights, tmp_path):
    path = tmp_path / "tiny.safetensors"
    shutil.copy(tiny_weights, path)
    return path


def _priors(model: DenseSaliency, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(len(model.readouts), *model.config.prior_grid, generator=generator)


def test_a_prior_beside_the_checkpoint_adds_its_condition(checkpoint):
    plain = load_checkpoint(checkpoint)
    assert [c.kind for c in plain.trained] == ["eye"]
    priors = _priors(plain.model)
    write_condition_priors(
        condition_path(checkpoint, Condition.USER_INTERFACE), plain.model, priors,
        Condition.USER_INTERFACE, {"fitted": "in a test"},
    )  # fmt: skip
    eye = load_checkpoint(checkpoint)
    ui = load_checkpoint(checkpoint, "ui")
    assert [c.kind for c in eye.trained] == [c.kind for c in ui.trained] == ["eye", "ui"]
    assert eye.condition == Condition.EYE_NATURAL and ui.condition == Condition.USER_INTERFACE
    for k, (a, b) in enumerate(zip(eye.model.readouts, ui.model.readouts, strict=True)):
        torch.testing.assert_close(b.log_prior[0, 0], priors[k].half().float())  # float16 file
        torch.testing.assert_close(a.log_prior, plain.model.readouts[k].log_prior)
    # the prior is all that differs: the same image, two conditions, two densities
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    a, b = Predictor(eye).predict(image), Predictor(ui).predict(image)
    assert not np.allclose(a.log_density, b.log_density)
    with pytest.raises(ValueError, match="trained on: eye, ui"):
        load_checkpoint(checkpoint, "mouse")


def test_a_prior_of_another_backbone_is_refused(checkpoint, tmp_path):
    torch.manual_seed(1)
    other = DenseSaliency(
        DenseConfig(backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96)
    )
    path = condition_path(checkpoint, Condition.USER_INTERFACE)
    write_condition_priors(path, other, _priors(other), Condition.USER_INTERFACE, {})
    assert read_metadata(path)["conditions"] == '["ui"]'
    load_checkpoint(checkpoint)  # the eye condition does not read the file
    with pytest.raises(CheckpointError, match="another backbone"):
        load_checkpoint(checkpoint, "ui")


def test_the_fit_learns_where_fixations_gather_and_cross_validation_says_so():
    # readouts that see nothing (uniform members); fixations in the top-left quarter on one
    # group of viewports, in the top half on the other: a prior can only gain there
    rng = np.random.default_rng(0)
    views = []
    for i in range(8):
        members = torch.full((3, 12, 16), -math.log(12 * 16))
        rows = rng.integers(0, 6, 40)
        cols = rng.integers(0, 8 if i % 2 else 16, 40)
        views.append(Viewport(members, torch.from_numpy(rows * 16 + cols), f"site{i % 4}"))
    start = torch.zeros(3, 12, 16)
    fitted = fit(views, start, strength=0.0)
    with torch.no_grad():
        gained = float(log_likelihood(fitted, views) - log_likelihood(start, views))
    assert gained > 0.5  # nats per fixation: the prior moved the mass to the top left
    top = fitted[:, :6].mean() - fitted[:, 6:].mean()
    assert top > 1.0
    scores = cross_validate(views, start, strengths=(0.0, 10.0))
    assert set(scores) == {0.0, 10.0, math.inf}
    assert max(scores, key=scores.get) != math.inf  # the held-out sites gain too


def test_readouts_trained_on_a_kind_export_as_its_condition_file(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from salience.cli import app

    # a run that fine-tuned the readouts on pages: same backbone, other readout weights
    tensors = load_file(str(checkpoint))
    metadata = read_metadata(checkpoint)
    for key in tensors:
        if key.startswith("readouts.") and key.endswith(".weight"):
            tensors[key] = tensors[key] + 0.5
    trained = tmp_path / "run-best.safetensors"
    save_file(tensors, str(trained), metadata=metadata)
    out = condition_path(checkpoint, Condition.USER_INTERFACE)
    args = ["export", str(trained), str(out), "--readouts-only", "--condition", "ui"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["conditions"] == '["ui"]'
    ui, eye = load_checkpoint(checkpoint, "ui"), load_checkpoint(checkpoint)
    changed = [k for k in tensors if k.startswith("readouts.") and k.endswith(".weight")]
    for key in changed:
        torch.testing.assert_close(
            ui.model.state_dict()[key], tensors[key].half().float(), rtol=0, atol=0
        )
        assert not torch.equal(eye.model.state_dict()[key], ui.model.state_dict()[key])
    refused = CliRunner().invoke(app, ["export", str(trained), str(out), "--condition", "ui"])
    assert refused.exit_code == 2 and "--readouts-only" in refused.output


def test_whole_readouts_must_replace_every_readout_of_the_model(tmp_path):
    # a file of readouts trained for a model with fewer readouts would leave the rest trained
    # on photos: refused, naming the readouts it lacks
    from safetensors.torch import save_file

    from salience.models.dense import checkpoint_metadata
    from salience.models.dense.conditions import write_condition

    torch.manual_seed(0)
    config = DenseConfig(
        backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96, readouts=3
    )
    model = DenseSaliency(config)
    checkpoint = tmp_path / "three.safetensors"
    save_file(
        model.state_dict(), str(checkpoint), metadata=checkpoint_metadata(model, "dense-lite0")
    )
    path = condition_path(checkpoint, Condition.USER_INTERFACE)
    state = model.state_dict()
    fewer = {k: v + 0.5 for k, v in state.items() if k.startswith(("readouts.0.", "readouts.1."))}
    write_condition(path, model, fewer, Condition.USER_INTERFACE, {})
    with pytest.raises(
        CheckpointError, match="holds 2 whole readouts, the model has 3; readouts 2 "
    ):
        load_checkpoint(checkpoint, "ui")
    every = {k: v + 0.5 for k, v in state.items() if k.startswith("readouts.")}
    write_condition(path, model, every, Condition.USER_INTERFACE, {})
    ui = load_checkpoint(checkpoint, "ui").model.state_dict()
    torch.testing.assert_close(
        ui["readouts.2.log_prior"], every["readouts.2.log_prior"].half().float()
    )
