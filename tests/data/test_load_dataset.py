"""Every reader is reachable by name with its real options, from Python and from `salience eval`."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from salience.cli import app
from salience.data import dataset_names, dataset_options, load_dataset, parse_dataset_options
from salience.data.osie import OSIE_PIXELS_PER_DEGREE

runner = CliRunner()


@pytest.fixture
def csv_root(tmp_path):
    """Three images, three observers each: enough to fit and tune every reference."""
    (tmp_path / "pics").mkdir()
    rows = ["image,observer,x,y"]
    for n, name in enumerate(("a.png", "b.png", "c.png")):
        Image.new("RGB", (40, 30)).save(tmp_path / "pics" / name)
        rows += [f"{name},s{o},{5 + 4 * o + n},{6 + 3 * o}" for o in range(3) for _ in range(2)]
    (tmp_path / "fix.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_options_are_parsed_to_their_types():
    assert parse_dataset_options("csv", ["images=pics", "kind=mouse"]) == {
        "images": "pics",
        "kind": "mouse",
    }
    assert parse_dataset_options("mit1003", ["include-initial-fixation=yes"]) == {
        "include_initial_fixation": True
    }
    with pytest.raises(ValueError, match="true or false"):
        parse_dataset_options("mit1003", ["include_initial_fixation=maybe"])
    with pytest.raises(ValueError, match="KEY one of: images, kind"):
        parse_dataset_options("csv", ["imgs=pics"])
    assert set(dataset_names()) >= {"csv", "cat2000", "osie", "nus-scene", "salicon", "mit1003"}
    assert dataset_options("salicon") == {"annotations": str, "images": str}


def test_csv_takes_pixels_per_degree_and_its_options(csv_root):
    data = load_dataset("csv", csv_root / "fix.csv", 30.0, images="pics", kind="mouse")
    assert (data.pixels_per_degree, data.kind, len(data)) == (30.0, "mouse", 3)


def test_known_geometry_is_the_default_and_can_be_overridden(tmp_path, osie_root):
    assert load_dataset("osie", osie_root).pixels_per_degree == OSIE_PIXELS_PER_DEGREE
    assert load_dataset("osie", osie_root, 12.5).pixels_per_degree == 12.5


def _eval(*args: str):
    return runner.invoke(app, ["eval", "--split", "all", "--fit-split", "all", *args])


def test_eval_on_a_csv_dataset(csv_root, tmp_path):
    out = tmp_path / "scores.json"
    result = _eval(
        "--dataset", "csv", "--root", str(csv_root / "fix.csv"), "--pixels-per-degree", "20",
        "--dataset-option", "images=pics", "--tune-split", "all", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "center-bias" in result.output and "gold-standard" in result.output
    assert out.is_file()


def test_eval_on_a_csv_dataset_needs_its_geometry(csv_root):
    result = _eval("--dataset", "csv", "--root", str(csv_root / "fix.csv"))
    assert result.exit_code == 2
    assert "--pixels-per-degree" in result.output and "Traceback" not in result.output


def test_eval_on_one_image_with_one_observer(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    (tmp_path / "one.csv").write_text("image,observer,x,y\na.png,s1,10,10\na.png,s1,20,12\n")
    result = _eval(
        "--dataset", "csv", "--root", str(tmp_path / "one.csv"), "--pixels-per-degree", "20",
        "--dataset-option", "images=.", "--tune-split", "all",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no image with two observers" in result.output  # the gold standard keeps defaults
    assert "nan" in result.output  # sAUC has no negatives on one image, and says so
    assert "Traceback" not in result.output and "Warning" not in result.output
