"""`salience aoi` and `salience compare` from the command line, on a small random model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from salience.cli import app

runner = CliRunner()


@pytest.fixture
def designs(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    b = a.copy()
    b[5:25, 50:75] = 255  # B adds a bright block top right
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    Image.fromarray(a[:40]).save(tmp_path / "short.png")
    return tmp_path


def test_aoi_writes_reports_and_a_picture(designs, tiny_weights, tmp_path):
    regions = tmp_path / "regions.json"
    regions.write_text(
        json.dumps(
            {
                "units": "fraction",
                "regions": [{"name": "tri", "polygon": [[0, 0], [0.5, 0], [0, 0.5]]}],
            }
        )
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "aoi",
            str(designs / "a.png"),
            "--region",
            "left:0,0,40,60",
            "--region",
            "right:40,0,40,60",
            "--regions",
            str(regions),
            "--samples",
            "200",
            "--out",
            str(out),
            "--checkpoint",
            str(tiny_weights),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "a_aoi.json").read_text())
    shares = {r["region"]: r["share"] for r in report["regions"]}
    assert shares["left"] + shares["right"] == pytest.approx(1.0, abs=1e-9)
    assert 0 < shares["tri"] < shares["left"]
    for r in report["regions"]:
        assert r["p_first_k_low"] <= r["p_first_k"] <= r["p_first_k_high"]
    with open(out / "a_aoi.csv", newline="") as f:
        assert [row["region"] for row in csv.DictReader(f)] == ["left", "right", "tri"]
    with Image.open(out / "a_aoi.png") as im:
        assert im.size == (80, 60)
    assert (out / "a_density.npy").is_file()


def test_aoi_errors(designs, tiny_weights, tmp_path):
    base = [
        "aoi",
        str(designs / "a.png"),
        "--out",
        str(tmp_path / "o"),
        "--checkpoint",
        str(tiny_weights),
    ]
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "region" in result.output
    result = runner.invoke(app, [*base, "--region", "oops"])
    assert result.exit_code == 2 and "oops" in result.output
    result = runner.invoke(app, [*base, "--region", "far:500,500,10,10"])
    assert result.exit_code == 2 and "far" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = runner.invoke(app, [*base, "--regions", str(broken)])
    assert result.exit_code == 2 and "broken.json" in result.output


def test_compare_deltas_and_pictures(designs, tiny_weights, tmp_path):
    out = tmp_path / "out"
    args = ["--samples", "200", "--out", str(out), "--checkpoint", str(tiny_weights)]
    result = runner.invoke(app, ["compare", str(designs / "a.png"), str(designs / "b.png"), *args])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "compare.json").read_text())
    assert len(data["regions"]) == 9  # the default 3 x 3 grid
    assert sum(r["share_delta"] for r in data["regions"]) == pytest.approx(0, abs=1e-9)
    for name in ("compare_difference.png", "compare_side_by_side.png", "compare.csv"):
        assert (out / name).is_file()
    # swapped: every delta negated
    swapped = tmp_path / "swapped"
    args[3] = str(swapped)
    runner.invoke(app, ["compare", str(designs / "b.png"), str(designs / "a.png"), *args])
    other = json.loads((swapped / "compare.json").read_text())
    for r, s in zip(data["regions"], other["regions"], strict=True):
        assert r["share_delta"] == pytest.approx(-s["share_delta"], abs=1e-12)
    # different sizes need fraction regions
    result = runner.invoke(
        app,
        [
            "compare",
            str(designs / "a.png"),
            str(designs / "short.png"),
            "--region",
            "x:0,0,10,10",
            *args,
        ],
    )
    assert result.exit_code == 2 and "fraction" in result.output
