"""A dataset of tall pages written as the viewports the Predictor cuts them into."""

from __future__ import annotations

import csv
import json

import numpy as np
from PIL import Image

from salience.data import load_dataset
from salience.models.tiling import Tiler
from salience.training.viewports import Viewports, write_viewports


def test_every_fixation_lands_in_its_viewport_at_the_same_pixel(tmp_path):
    rng = np.random.default_rng(0)
    pages = {"s1_alpha_0.png": (400, 120), "s1_beta_0.png": (90, 120)}  # tall, and short
    rows = ["image,observer,x,y"]
    (tmp_path / "images").mkdir()
    for name, (height, width) in pages.items():
        rows_, cols_ = np.mgrid[
            0:height, 0:width
        ]  # smooth, so JPEG keeps it, and every row differs
        page = np.stack([rows_ * 255 // height, cols_ * 2, np.full_like(rows_, 128)], -1)
        page = page.astype(np.uint8)
        Image.fromarray(page).save(tmp_path / "images" / name)
        for observer in "ab":
            for x, y in zip(rng.uniform(0, width, 8), rng.uniform(0, height, 8), strict=True):
                rows.append(f"{name},{observer},{x:.2f},{y:.2f}")
    (tmp_path / "fixations.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "split.json").write_text(json.dumps({"train": list(pages)}))
    data = load_dataset("csv", tmp_path / "fixations.csv", pixels_per_degree=20)
    out = tmp_path / "viewports"
    counts = write_viewports(data, out, select_sites=["beta"])
    plan = Tiler().plan((400, 120))
    assert plan is not None and Tiler().plan((90, 120)) is None
    assert counts["fixations"] == 32
    with open(out / "fixations.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 32
    tall = load_dataset("csv", tmp_path / "fixations.csv", pixels_per_degree=20).by_id(
        "s1_alpha_0.png"
    )
    cut = Viewports.of(tall, Tiler())
    owner, xs, ys = cut.locate(*tall.fixations())
    for row in written:
        name, k = row["image"].rsplit("__", 1)
        viewport = np.asarray(Image.open(out / "images" / row["image"]))
        x, y = float(row["x"]), float(row["y"])
        assert 0 <= x < viewport.shape[1] and 0 <= y < viewport.shape[0]
        if name == "s1_alpha_0.png":
            k = int(k.split(".")[0])
            assert viewport.shape[:2] == (plan.length, 120)
            assert any(
                np.isclose(xs[owner == k], x, atol=5e-3) & np.isclose(ys[owner == k], y, atol=5e-3)
            )
            # the same pixel of the page: the viewport starts at its plan's row
            original = np.asarray(Image.open(tmp_path / "images" / name))[
                plan.starts[k] : plan.starts[k] + plan.length
            ]
            assert np.abs(viewport.astype(int) - original.astype(int)).mean() < 3  # JPEG
        else:
            assert viewport.shape[:2] == (90, 120)  # whole
    splits = json.loads((out / "split.json").read_text())
    assert all(v.startswith("s1_beta") for v in splits["select"]) and splits["select"]
    assert all(v.startswith("s1_alpha") for v in splits["fit"]) and splits["fit"]
    assert sorted(splits["train"]) == sorted(splits["fit"] + splits["select"])
