"""``salience eval`` end to end on a small split of the real OSIE data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from salience.cli import app
from salience.evaluation.evaluate import METRICS

runner = CliRunner()


def test_eval_baselines_table_and_files(small_osie: Path, tmp_path: Path) -> None:
    out = tmp_path / "res" / "results.json"
    args = [
        "eval",
        "--dataset",
        "osie",
        "--root",
        str(small_osie),
        "--split",
        "val",
        "-m",
        "uniform",
        "-m",
        "center-bias",
        "-m",
        "gold-standard",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for m in METRICS:
        assert m in result.output
    data = json.loads(out.read_text())
    rows = {r["model"]: r for r in data["results"]}
    assert set(rows) == {"uniform", "center-bias", "gold-standard"}
    assert all(len(r["per_image"]) == 6 for r in rows.values())
    cb, gold, uni = (rows[k]["means"] for k in ("center-bias", "gold-standard", "uniform"))
    assert cb["IG"] == pytest.approx(0.0, abs=1e-12)  # IG is relative to the center bias
    assert uni["IG"] < 0 < gold["IG"]
    assert gold["IG"] == pytest.approx(data["gold_standard_information_gain"], rel=1e-9)
    explained = data["explainable_information_gain_percent"]
    assert explained["gold-standard"] == pytest.approx(100.0)
    assert explained["center-bias"] == pytest.approx(0.0, abs=1e-9)
    for metric in ("AUC-Judd", "NSS", "CC", "SIM", "LL"):
        assert uni[metric] < cb[metric] < gold[metric], metric
    assert gold["KL"] < cb["KL"] < uni["KL"]
    with out.with_suffix(".csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["uniform", "center-bias", "gold-standard"]
    assert float(table[1]["NSS"]) == pytest.approx(cb["NSS"], rel=1e-5)

    # the same command gives the same numbers
    again = tmp_path / "again.json"
    assert runner.invoke(app, [*args[:-1], str(again)]).exit_code == 0
    assert json.loads(again.read_text())["results"] == data["results"]


def _score_maps(root: Path, maps: Path, ids: list[str], smap: np.ndarray, out: Path) -> dict:
    """Write ``smap`` for every id (alternately .npy and 8-bit .png) and score the folder."""
    from PIL import Image

    for i, image_id in enumerate(ids):
        if i % 2:
            np.save(maps / f"{image_id}.npy", smap)
        else:
            Image.fromarray((smap * 255).astype(np.uint8)).save(maps / f"{image_id}.png")
    return _score_folder(root, maps, out)


def _score_folder(root: Path, maps: Path, out: Path) -> dict:
    """``salience eval --predictions maps --mode map`` on the test split: its means."""
    result = runner.invoke(
        app,
        [
            "eval",
            "--dataset",
            "osie",
            "--root",
            str(root),
            "--split",
            "test",
            "--predictions",
            str(maps),
            "--out",
            str(out),
            "--mode",
            "map",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["results"][0]["means"]


def test_eval_predictions_folder(small_osie: Path, tmp_path: Path) -> None:
    """Maps of any size, .npy and .png, resized to the stimulus and scored."""
    maps = tmp_path / "maps"
    maps.mkdir()
    split = json.loads((small_osie / "split.json").read_text())
    yy, xx = np.mgrid[0:60, 0:80]
    center = np.exp(-(((xx - 40) / 20) ** 2 + ((yy - 30) / 15) ** 2))
    means = _score_maps(small_osie, maps, split["test"], center, tmp_path / "p.json")
    # the inverted map (periphery salient) must score clearly worse than the center map
    worse = _score_maps(small_osie, maps, split["test"], 1 - center, tmp_path / "inv.json")
    assert means["AUC-Judd"] > 0.6 > 0.4 > worse["AUC-Judd"]
    assert means["NSS"] > 0.3 > -0.3 > worse["NSS"]
    assert means["CC"] > worse["CC"]

    # salience predict's <id>_density.npy is read too
    for path in maps.glob("*.npy"):
        path.rename(maps / f"{path.stem}_density.npy")
    assert _score_folder(small_osie, maps, tmp_path / "renamed.json") == pytest.approx(worse)

    (maps / f"{split['test'][0]}.png").unlink()
    result = runner.invoke(
        app,
        [
            "eval",
            "--dataset",
            "osie",
            "--root",
            str(small_osie),
            "--split",
            "test",
            "--predictions",
            str(maps),
        ],
    )
    assert result.exit_code == 2
    assert split["test"][0] in result.output


def test_eval_bad_arguments(small_osie: Path) -> None:
    base = ["eval", "--dataset", "osie", "--root", str(small_osie)]
    result = runner.invoke(app, [*base, "--split", "nope"])
    assert result.exit_code == 2 and "no split 'nope'" in result.output
    result = runner.invoke(app, [*base, "-m", "no-such-model"])
    assert result.exit_code == 2 and "unknown model" in result.output
    result = runner.invoke(app, ["eval", "--dataset", "nope", "--root", str(small_osie)])
    assert result.exit_code == 2 and "unknown dataset" in result.output


def test_models_lists_registry() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "gold-standard" in result.output and "center-bias" in result.output


def test_serve_reports_a_missing_checkpoint_and_a_taken_port(tmp_path: Path, tiny_weights) -> None:
    import socket

    result = runner.invoke(app, ["serve", "--checkpoint", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 2 and "not found" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = runner.invoke(app, ["serve", "--port", port, "--checkpoint", str(tiny_weights)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output
