"""The Predictor and `salience predict` cut tall and wide images into viewports, and say so."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from salience.cli import app
from salience.models.dense import DenseConfig, DenseDensity, DenseSaliency
from salience.models.tiling import Tiler
from salience.predictor import Predictor


@pytest.fixture(scope="module")
def model() -> DenseDensity:
    torch.manual_seed(0)
    config = DenseConfig(backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96)
    return DenseDensity(DenseSaliency(config))


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[5:20, 10:40] = 255
    return image


def test_tall_image_is_predicted_viewport_by_viewport(model):
    image = _image(400, 120)
    result = Predictor(model, n_fixations=3).predict(image, scanpaths=1)
    plan = Tiler().plan((400, 120))
    assert result.size == (400, 120) and result.density.sum() == pytest.approx(1.0, abs=1e-9)
    assert result.tiled["viewports"] == len(plan) and result.tiled["direction"] == "down"
    assert result.tiled["viewport"] == {"height": plan.length, "width": 120}
    assert result.fixations_dict()["tiled"] == result.tiled
    # degrees are a viewport's: its longer side spans the assumed image span
    assert result.pixels_per_degree == pytest.approx(120 / Predictor(model).image_degrees)
    whole = Predictor(model, n_fixations=3, tiling=False).predict(image)
    assert whole.tiled is None and whole.fixations_dict()["tiled"] is None
    top = slice(0, plan.length)
    assert result.density[top].sum() > whole.density[top].sum()


def test_short_images_are_bit_identical_with_and_without_tiling(model):
    images = [_image(60, 90, 1), _image(90, 60, 2), _image(50, 100, 3)]
    tiled = Predictor(model).predict_batch([*images, _image(300, 100, 4)])
    plain = Predictor(model, tiling=False).predict_batch(images)
    for a, b in zip(tiled, plain, strict=False):
        assert np.array_equal(a.log_density, b.log_density) and a.tiled is None
        assert np.array_equal(a.fixations, b.fixations)
    direct = model.log_densities(images)
    for a, b in zip(tiled, direct, strict=False):
        assert np.array_equal(a.log_density, b)


def test_window_maps_of_a_tall_image_are_joined_too(model):
    from torch import nn

    from salience.data.windows import Window
    from salience.models.dense.model import Readout
    from salience.models.dense.windows import WindowedDensity

    torch.manual_seed(1)
    channels = model.model.backbone.channels
    readouts = nn.ModuleList(Readout(model.model.config, channels) for _ in range(2))
    predictor = Predictor(model)
    predictor._windowed = WindowedDensity(model, readouts, [Window(0, 1), Window(1, 2)])
    assert Tiler().plan((100, 44)) is None  # 2.3:1, but viewports 28 pixels tall: whole
    image = _image(140, 64)  # 2.2:1: 6 viewports of 40 x 64
    result = predictor.predict(image, windows=True)
    assert result.tiled is not None and len(result.windows) == 2
    for window in result.windows:
        assert window.density.shape == (140, 64)
        assert window.density.sum() == pytest.approx(1.0, abs=1e-9)
    plain = predictor.predict(image)
    np.testing.assert_allclose(result.log_density, plain.log_density, atol=1e-5)


def test_predict_command_reports_tiled_images(tiny_weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_image(360, 100)).save(folder / "page.png")
    Image.fromarray(_image(60, 80)).save(folder / "photo.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["predict", str(folder), "--out", str(out), "--checkpoint", str(tiny_weights)]
    )
    assert result.exit_code == 0, result.output
    assert "1 tall or wide image(s) predicted viewport by viewport" in result.output
    with open(out / "summary.csv", newline="") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    assert rows["page"]["viewports"] == str(len(Tiler().plan((360, 100))))
    assert rows["photo"]["viewports"] == ""
    page = json.loads((out / "page_fixations.json").read_text())
    assert page["tiled"]["direction"] == "down" and page["settings"]["tiling"]["overlap"] == 0.5
    assert json.loads((out / "photo_fixations.json").read_text())["tiled"] is None
    assert np.load(out / "page_density.npy").shape == (360, 100)


def test_eval_scores_tall_images_viewport_by_viewport_unless_told(tiny_weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,observer,x,y"]
    for k in range(2):
        Image.fromarray(_image(360, 100, k)).save(images / f"page{k}.png")
        for observer in "abc":
            for x, y in zip(rng.uniform(0, 100, 6), rng.uniform(0, 120, 6), strict=True):
                rows.append(f"page{k}.png,{observer},{x:.1f},{y:.1f}")
    (tmp_path / "fixations.csv").write_text("\n".join(rows) + "\n")
    scores = {}
    for flag in ("--tiling", "--no-tiling"):
        out = tmp_path / f"{flag}.json"
        args = ["eval", "--dataset", "csv", "--root", str(tmp_path / "fixations.csv")]
        args += ["--pixels-per-degree", "20", "--split", "all", "--fit-split", "all"]
        args += ["--tune-split", "all", "--checkpoint", str(tiny_weights), flag, "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        scores[flag] = json.loads(out.read_text())["results"][-1]["means"]["IG"]
    assert scores["--tiling"] != scores["--no-tiling"]
