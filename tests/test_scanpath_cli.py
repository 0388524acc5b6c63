"""`salience scanpath`: a sampled scanpath as a numbered gaze plot, its table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from salience.cli import app
from salience.predictor import Scanpath

runner = CliRunner()


@pytest.fixture
def photo(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def _run(*args):
    return runner.invoke(app, ["scanpath", *map(str, args)])


def test_writes_the_gaze_plot_json_and_table(photo, tiny_weights, tmp_path):
    out, record = tmp_path / "plots" / "path.png", tmp_path / "path.json"
    result = _run(photo, "--out", out, "--json", record, "--n", 6, "--checkpoint", tiny_weights)
    assert result.exit_code == 0, result.output
    with Image.open(out) as im, Image.open(photo) as original:
        assert im.format == "PNG" and im.size == (80, 60) and im.mode == "RGB"
        assert (np.asarray(im) != np.asarray(original)).any()  # something drawn
    data = json.loads(record.read_text())
    assert data["size"] == {"height": 60, "width": 80} and data["scanpath_seed"] == 0
    (path,) = (Scanpath.from_dict(p) for p in data["scanpaths"])
    assert len(path) == 6
    assert ((path.x >= 0) & (path.x < 80) & (path.y >= 0) & (path.y < 60)).all()
    for column in ("order", "duration"):
        assert column in result.output
    assert f"{path.x[0]:.1f}" in result.output and f"{path.duration[5]:.3f}" in result.output
    assert not list(out.parent.glob(".*")) and not list(tmp_path.glob(".*"))  # atomic


def test_seed_makes_it_reproducible_and_default_output(photo, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def path(seed: int) -> dict:
        record = tmp_path / f"seed{seed}.json"
        result = _run(photo, "--seed", seed, "--json", record, "--checkpoint", tiny_weights)
        assert result.exit_code == 0, result.output
        return json.loads(record.read_text())["scanpaths"]

    first = path(3)
    assert len(first[0]["fixations"]) == 10  # default length
    assert path(3) == first and path(4) != first
    assert (tmp_path / "salience-out" / "photo_scanpath.png").is_file()


def test_bad_inputs_are_clear_errors(photo, tiny_weights, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not an image")
    result = _run(broken, "--out", tmp_path / "x.png", "--checkpoint", tiny_weights)
    assert result.exit_code == 2 and "broken.jpg" in result.output
    assert "not a readable image" in result.output and not (tmp_path / "x.png").exists()
    result = _run(tmp_path / "missing.png", "--checkpoint", tiny_weights)
    assert result.exit_code == 2 and "not found" in result.output
    result = _run(photo, "--out", tmp_path, "--checkpoint", tiny_weights)  # a folder
    assert result.exit_code == 2 and f"cannot write {tmp_path}" in result.output
    result = _run(photo, "--checkpoint", tmp_path / "none.safetensors")
    assert result.exit_code == 2 and "not found" in result.output
    assert _run(photo, "--n", 0, "--checkpoint", tiny_weights).exit_code == 2
