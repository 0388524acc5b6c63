"""`salience predict`: per-image files, summary, bad files skipped, interrupted runs finished."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from salience import batch
from salience.cli import app
from salience.predictor import Predictor, Scanpath

runner = CliRunner()


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 40), dtype=np.uint8)).save(images / "b.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    (images / "notes.txt").write_text("not an image: ignored")
    return images


def _run(*args):
    return runner.invoke(app, ["predict", *map(str, args)])


def _rows(out):
    with open(out / "summary.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def test_folder_outputs_and_failures(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    result = _run(folder, "--out", out, "--checkpoint", tiny_weights, "--fixations", 4)
    assert result.exit_code == 1, result.output  # one image failed
    assert "broken.jpg" in result.output
    for name, size in (("a", (60, 80)), ("b", (50, 40))):
        density = np.load(out / f"{name}_density.npy")
        assert density.dtype == np.float32 and density.shape == size
        assert density.sum() == pytest.approx(1.0, abs=1e-4)
        for kind in ("heatmap", "overlay"):
            with Image.open(out / f"{name}_{kind}.png") as im:
                assert im.size == (size[1], size[0]) and im.mode == "RGB"
        fixations = json.loads((out / f"{name}_fixations.json").read_text())
        assert len(fixations["fixations"]) == 4 and fixations["fixations"][0]["order"] == 1
    rows = _rows(out)
    assert rows["a"]["status"] == rows["b"]["status"] == "written"
    assert rows["broken"]["status"] == "failed" and "broken.jpg" in rows["broken"]["error"]
    assert not (out / "broken_density.npy").exists()
    assert [p.name for p in out.glob(".*")] == [".salience-predict.lock"]  # no temporary files


def test_rerun_skips_finished_images_and_overwrite_redoes_them(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights)
    stamp = (out / "a_density.npy").stat().st_mtime_ns
    result = _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights)
    assert result.exit_code == 0 and _rows(out)["a"]["status"] == "exists"
    assert (out / "a_density.npy").stat().st_mtime_ns == stamp
    (out / "a_overlay.png").unlink()  # one file missing: predicted again
    result = _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights)
    assert _rows(out)["a"]["status"] == "written" and (out / "a_overlay.png").is_file()
    result = _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights, "--overwrite")
    assert _rows(out)["a"]["status"] == "written"


def test_interrupted_run_leaves_no_partial_file_and_finishes_on_rerun(
    folder, tiny_weights, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    real_save = batch.save_png
    calls = {"n": 0}

    def save_then_die(path, array, **options):
        calls["n"] += 1
        if calls["n"] == 3:  # the writer threads take a and b in any order: one is cut short
            raise KeyboardInterrupt
        real_save(path, array, **options)

    monkeypatch.setattr(batch, "save_png", save_then_die)
    result = _run(
        folder / "a.png",
        folder / "b.jpg",
        "--out",
        out,
        "--checkpoint",
        tiny_weights,
        "--batch-size",
        2,
    )
    assert result.exit_code != 0
    assert [p.name for p in out.glob(".*")] == [".salience-predict.lock"]  # no temporary file
    unfinished = [n for n in ("a", "b") if not (out / f"{n}_fixations.json").exists()]
    assert unfinished  # the image whose PNG was cut short has no record (written last)
    monkeypatch.setattr(batch, "save_png", real_save)
    result = _run(folder / "a.png", folder / "b.jpg", "--out", out, "--checkpoint", tiny_weights)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    for name in ("a", "b"):
        assert rows[name]["status"] == ("written" if name in unfinished else "exists")
        assert all((out / f"{name}{suffix}").is_file() for suffix in batch.OUTPUTS)


def test_maps_chooses_the_map_files_and_resumes_by_them(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    images = (folder / "a.png", folder / "b.jpg")
    result = _run(*images, "--out", out, "--checkpoint", tiny_weights, "--maps", "overlay,density")
    assert result.exit_code == 0, result.output
    made = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    suffixes = ("_density.npy", "_overlay.png", "_fixations.json")
    expected = sorted(f"{n}{suffix}" for n in ("a", "b") for suffix in suffixes)
    assert made == [*expected, "summary.csv"]
    assert _scanpaths(out)["settings"]["maps"] == ["density", "overlay"]  # MAPS' order

    again = _run(*images, "--out", out, "--checkpoint", tiny_weights, "--maps", "density,overlay")
    assert {row["status"] for row in _rows(out).values()} == {"exists"}, again.output
    (out / "b_overlay.png").write_bytes(b"\x89PNG cut short")
    _run(*images, "--out", out, "--checkpoint", tiny_weights, "--maps", "density,overlay")
    assert {n: row["status"] for n, row in _rows(out).items()} == {"a": "exists", "b": "written"}

    # all three (the default) is another job: the images are made again, with every file
    result = _run(*images, "--out", out, "--checkpoint", tiny_weights)
    assert {row["status"] for row in _rows(out).values()} == {"written"}, result.output
    assert "maps" not in _scanpaths(out)["settings"]
    assert all((out / f"{n}{suffix}").is_file() for n in ("a", "b") for suffix in batch.OUTPUTS)

    none = tmp_path / "none"
    result = _run(folder / "a.png", "--out", none, "--checkpoint", tiny_weights, "--maps", "none")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in none.iterdir() if not p.name.startswith(".")) == [
        "a_fixations.json",
        "summary.csv",
    ]
    assert _rows(none)["a"]["top10_area_share"] != ""  # the summary's figures are still there

    result = _run(folder, "--out", tmp_path / "x", "--checkpoint", tiny_weights, "--maps", "hetmap")
    assert result.exit_code == 2 and "unknown map hetmap" in result.output
    assert not (tmp_path / "x").exists()


def test_globs_duplicate_stems_and_missing_inputs(folder, tiny_weights, tmp_path):
    Image.new("RGB", (30, 20), "white").save(folder / "a.jpg")
    out = tmp_path / "out"
    result = _run(
        str(folder / "a.*"), folder / "nothing-here.png", "--out", out, "--checkpoint", tiny_weights
    )
    assert result.exit_code == 1, result.output  # an input gave no image: the job says so
    assert "nothing-here.png: file not found" in result.output
    assert (out / "a_png_density.npy").is_file() and (out / "a_jpg_density.npy").is_file()


def test_errors_before_any_work(folder, tiny_weights, tmp_path):
    result = _run(tmp_path / "nothing", "--out", tmp_path / "out", "--checkpoint", tiny_weights)
    assert result.exit_code == 2 and "no images" in result.output
    result = _run(
        folder, "--out", tmp_path / "out", "--checkpoint", tiny_weights, "--colormap", "jett"
    )
    assert result.exit_code == 2 and "colormap" in result.output
    result = _run(folder, "--out", tmp_path / "out", "--checkpoint", tmp_path / "none.safetensors")
    assert result.exit_code == 2 and "not found" in result.output
    result = _run(folder, "--out", tmp_path / "out", "--checkpoint", tiny_weights, "--opacity", "2")
    assert result.exit_code == 2


def _scanpaths(out, name="a"):
    return json.loads((out / f"{name}_fixations.json").read_text())


def test_scanpaths_in_the_fixations_json(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    result = _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights)
    assert result.exit_code == 0, result.output
    data = _scanpaths(out)
    assert len(data["scanpaths"]) == 1 and data["scanpath_seed"] == 0  # default: one, seed 0
    assert data["settings"]["scanpaths"] == 1 and len(data["fixations"]) == 10
    result = _run(
        folder / "a.png",
        "--out",
        out,
        "--checkpoint",
        tiny_weights,
        "--scanpaths",
        3,
        "--scanpath-length",
        4,
        "--seed",
        5,
    )
    assert _rows(out)["a"]["status"] == "written"  # other settings: predicted again
    data = _scanpaths(out)
    paths = [Scanpath.from_dict(p) for p in data["scanpaths"]]
    assert len(paths) == 3 and all(len(p) == 4 for p in paths)
    assert all(((p.x >= 0) & (p.x < 80) & (p.y >= 0) & (p.y < 60)).all() for p in paths)
    # the CLI's scanpaths are the library's: same seed, same numbers
    expected = Predictor.from_checkpoint(tiny_weights, scanpath_length=4).predict(
        folder / "a.png", scanpaths=3, seed=5
    )
    for path, want in zip(paths, expected.scanpaths, strict=True):
        np.testing.assert_allclose(path.points, want.points)
        np.testing.assert_allclose(path.duration, want.duration)


def test_no_scanpaths_and_reruns_with_other_settings(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    base = (folder / "a.png", "--out", out, "--checkpoint", tiny_weights)
    result = _run(*base, "--scanpaths", 0)
    assert result.exit_code == 0, result.output
    data = _scanpaths(out)
    assert data["scanpaths"] == [] and data["scanpath_seed"] is None
    _run(*base, "--scanpaths", 0)
    assert _rows(out)["a"]["status"] == "exists"  # same settings: done
    _run(*base, "--scanpaths", 0, "--fixations", 3)
    assert _rows(out)["a"]["status"] == "written" and len(_scanpaths(out)["fixations"]) == 3
    _run(*base, "--scanpaths", 0, "--fixations", 3, "--seed", 1)
    assert _rows(out)["a"]["status"] == "written"
    first = _scanpaths(out)
    _run(*base, "--scanpaths", 0, "--fixations", 3, "--seed", 1)
    assert _rows(out)["a"]["status"] == "exists" and _scanpaths(out) == first
    # files from before settings were recorded (or edited by hand) are redone
    del first["settings"]
    (out / "a_fixations.json").write_text(json.dumps(first))
    _run(*base, "--scanpaths", 0, "--fixations", 3, "--seed", 1)
    assert _rows(out)["a"]["status"] == "written" and "settings" in _scanpaths(out)
    (out / "a_fixations.json").write_text("{not json")
    _run(*base, "--scanpaths", 0, "--fixations", 3, "--seed", 1)
    assert _rows(out)["a"]["status"] == "written"
    assert _run(*base, "--scanpaths", -1).exit_code == 2


def test_windows_write_one_map_per_window_and_count_in_the_done_check(tmp_path):
    out = tmp_path / "out"
    base = (Path(__file__).resolve().parents[1] / "docs" / "example.jpg", "--out", out)
    result = _run(*base, "--scanpaths", 0, "--windows")
    assert result.exit_code == 0, result.output
    labels = ["0-1s", "1-2s", "2-3s"]
    assert _scanpaths(out, "example")["settings"]["windows"] == labels
    for label in labels:
        density = np.load(out / f"example_window_{label}_density.npy")
        assert density.shape == (512, 512) and density.sum() == pytest.approx(1.0, abs=1e-4)
        for kind in ("heatmap", "overlay"):
            with Image.open(out / f"example_window_{label}_{kind}.png") as im:
                assert im.size == (512, 512)
    main = np.load(out / "example_density.npy")
    assert not np.allclose(main, np.load(out / "example_window_0-1s_density.npy"))
    _run(*base, "--scanpaths", 0, "--windows")
    assert _rows(out)["example"]["status"] == "exists"
    _run(*base, "--scanpaths", 0)  # the setting changed: predicted again, without windows
    assert _rows(out)["example"]["status"] == "written"
    assert "windows" not in _scanpaths(out, "example")["settings"]
    _run(*base, "--scanpaths", 0, "--windows")
    assert _rows(out)["example"]["status"] == "written"
    (out / "example_window_1-2s_overlay.png").unlink()  # one window's file missing: redone
    _run(*base, "--scanpaths", 0, "--windows")
    assert _rows(out)["example"]["status"] == "written"
    assert (out / "example_window_1-2s_overlay.png").is_file()


def test_windows_need_the_default_backbone(folder, tiny_weights, tmp_path):
    result = _run(
        folder / "a.png", "--out", tmp_path / "out", "--checkpoint", tiny_weights, "--windows"
    )
    assert result.exit_code == 2 and "backbone" in result.output
    assert not (tmp_path / "out").exists()


def test_inputs_that_give_no_image_are_failed_rows(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    inputs = [folder / "a.png", tmp_path / "missing.png", tmp_path / "dangling.png", empty]
    result = _run(*inputs, folder / "photo.heic", "--out", out, "--checkpoint", tiny_weights)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    with open(out / "summary.csv", newline="") as f:
        rows = {row["image"]: row for row in csv.DictReader(f)}
    assert rows[str(folder / "a.png")]["status"] == "written"
    assert "file not found" in rows[str(tmp_path / "missing.png")]["error"]
    assert "broken symbolic link" in rows[str(tmp_path / "dangling.png")]["error"]
    assert "no images" in rows[str(empty)]["error"]
    _run(folder, "--out", out, "--checkpoint", tiny_weights)  # a folder: its .heic is reported
    with open(out / "summary.csv", newline="") as f:
        errors = {row["image"]: row["error"] for row in csv.DictReader(f)}
    assert ".heic images are not supported" in errors[str(folder / "photo.heic")]


def test_outputs_inside_the_input_folder_are_not_inputs(folder, tiny_weights):
    out = folder / "results"
    first = _run(folder, "--out", out, "--checkpoint", tiny_weights)
    second = _run(folder, "--out", out, "--checkpoint", tiny_weights)
    assert first.exit_code == second.exit_code == 1  # broken.jpg
    with open(out / "summary.csv", newline="") as f:
        names = sorted(row["name"] for row in csv.DictReader(f))
    assert names == ["a", "b", "broken"]  # not a_heatmap, a_overlay, ...


def test_resume_follows_content_and_redoes_damaged_outputs(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    args = (folder / "a.png", folder / "b.jpg", "--out", out, "--checkpoint", tiny_weights)
    assert _run(*args).exit_code == 0
    assert {r["status"] for r in _rows(out).values()} == {"written"}
    assert {r["status"] for r in (_run(*args), _rows(out))[1].values()} == {"exists"}
    # an edited input under the same name, a truncated density, a garbage heatmap
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(folder / "a.png")
    (out / "b_heatmap.png").write_bytes(b"garbage")
    assert _run(*args).exit_code == 0
    assert {r["status"] for r in _rows(out).values()} == {"written"}
    with Image.open(out / "b_heatmap.png") as im:
        im.load()
    data = (out / "a_density.npy").read_bytes()
    (out / "a_density.npy").write_bytes(data[: len(data) // 2])
    (out / ".a_overlay.k3j5x_9q.tmp.png").write_bytes(b"left by a killed writer")
    assert _run(*args).exit_code == 0
    rows = _rows(out)
    assert rows["a"]["status"] == "written" and rows["b"]["status"] == "exists"
    assert not (out / ".a_overlay.k3j5x_9q.tmp.png").exists()


def test_a_second_job_into_the_same_folder_is_refused(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    with batch.output_lock(out):
        result = _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights)
    assert result.exit_code == 2 and "another salience predict is writing" in result.output
    assert _run(folder / "a.png", "--out", out, "--checkpoint", tiny_weights).exit_code == 0


def test_an_output_location_that_is_a_file_is_a_clear_error(folder, tiny_weights, tmp_path):
    target = tmp_path / "taken"
    target.write_text("a file")
    result = _run(folder / "a.png", "--out", target, "--checkpoint", tiny_weights)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(target) in result.output


def test_huge_images_are_predicted_reduced(tiny_weights, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (6000, 4000), (90, 120, 200)).save(path)
    predictor = Predictor.from_checkpoint(tiny_weights)
    prediction = predictor.predict(path)
    height, width = prediction.size
    assert height * width <= 2048 * 2048 and abs(width / height - 1.5) < 0.01
    assert prediction.original_size == (4000, 6000)
    assert prediction.fixations_dict()["original_size"] == {"height": 4000, "width": 6000}
