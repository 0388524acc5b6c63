"""A dataset of tall images (web pages) as a dataset of the viewports the Predictor sees.

Training resizes every image to one input size, which turns a page ten screens deep into a
sliver. The Predictor cuts such images into viewports (:class:`~salience.models.tiling.Tiler`);
training on pages should see the same viewports. :func:`write_viewports` writes each viewport
that holds fixations as an image file, the fixations that count in it (the viewport whose
blending weight is largest at them, :meth:`~salience.models.tiling.Tiling.owners`) in the CSV
form of :mod:`salience.data.csv`, and a ``split.json``: the source's splits, carried over to
their viewports, and ``fit``/``select``, the source's ``train`` split without and with only
the ``select_sites`` (web sites held out of training to choose the checkpoint on, so that the
source's own val split is not looked at before the model is final). Images are decoded as the
Predictor decodes them (within :data:`~salience.io.images.WORKING_PIXELS`), positions scaled
to match.

    python -m salience.training.viewports --dataset eyevido --root ../shared/data/eyevido \
        --out runs/eyevido-viewports --select-sites microsoft
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from salience.data import load_dataset
from salience.data.dataset import Dataset, Stimulus
from salience.data.eyevido import site_of
from salience.io.atomic import atomic_write
from salience.io.images import WORKING_PIXELS, read_image
from salience.models.tiling import Tiler, Tiling

COLUMNS = ("image", "observer", "x", "y", "onset", "duration")


@dataclass(frozen=True)
class Viewports:
    """An image as the Predictor cuts it: decoded as it decodes it (``scale`` decoded pixels per
    pixel of the stimulus), its viewports (the whole image when it is not cut, ``plan`` None)."""

    crops: list[np.ndarray]  # uint8 (h, w, 3) each, top to bottom or left to right
    plan: Tiling | None
    scale: float

    @classmethod
    def of(cls, stimulus: Stimulus, tiler: Tiler) -> Viewports:
        decoded = read_image(stimulus.path, WORKING_PIXELS)
        plan = tiler.plan(decoded.pixels.shape[:2])
        crops = [decoded.pixels] if plan is None else plan.crops(decoded.pixels)
        return cls(crops, plan, decoded.scale)

    def locate(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per fixation (pixels of the stimulus) the viewport it counts in (where its blending
        weight is largest) and its position in that viewport's pixels."""
        xs, ys = xs * self.scale, ys * self.scale
        if self.plan is None:
            return np.zeros(len(xs), int), xs, ys
        owner = self.plan.owners(xs, ys)
        start = np.asarray(self.plan.starts)[owner]
        if self.plan.axis == 0:
            return owner, xs, ys - start
        return owner, xs - start, ys


def write_viewports(
    dataset: Dataset, out: Path, select_sites: Sequence[str] = (), tiler: Tiler | None = None
) -> dict[str, int]:
    """Write the viewports of ``dataset`` to ``out`` (see the module docstring); returns counts.
    Viewport images already written are kept (the same input gives the same bytes)."""
    tiler = tiler or Tiler()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[tuple] = []
    written: dict[str, list[str]] = {}
    for stimulus in dataset:
        cut = Viewports.of(stimulus, tiler)
        names = []
        for scanpath in stimulus.scanpaths:
            owner, xs, ys = cut.locate(scanpath.x, scanpath.y)
            onset = scanpath.onset if scanpath.onset is not None else np.full(len(xs), math.nan)
            for k in np.unique(owner):
                name = f"{stimulus.id}__{k:02d}.jpg"
                mine = owner == k
                for values in zip(
                    xs[mine], ys[mine], onset[mine], scanpath.duration[mine], strict=True
                ):
                    rows.append((name, scanpath.observer, *values))
                if name not in names:
                    names.append(name)
        for name in names:
            path = images / name
            if not path.is_file():
                k = int(name.rsplit("__", 1)[1].split(".")[0])
                buffer = io.BytesIO()
                Image.fromarray(cut.crops[k]).save(buffer, format="JPEG", quality=95)
                atomic_write(path, buffer.getvalue())
        written[stimulus.id] = sorted(names)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for name, observer, x, y, onset, duration in rows:
        cells = [f"{v:.3f}" if math.isfinite(v) else "" for v in (x, y, onset, duration)]
        writer.writerow([name, observer, *cells])
    atomic_write(out / "fixations.csv", text.getvalue())
    splits = {
        split: [v for i in ids if i in written for v in written[i]]
        for split, ids in dataset.splits.items()
    }
    train = [i for i in dataset.splits.get("train", []) if i in written]
    splits["fit"] = [v for i in train if site_of(i) not in select_sites for v in written[i]]
    splits["select"] = [v for i in train if site_of(i) in select_sites for v in written[i]]
    atomic_write(out / "split.json", json.dumps(splits, indent=1))
    return {"viewports": sum(len(v) for v in written.values()), "fixations": len(rows)} | {
        f"split {k}": len(v) for k, v in splits.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="eyevido")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--select-sites", default="", help="comma-separated web sites")
    args = parser.parse_args(argv)
    dataset = load_dataset(args.dataset, args.root)
    sites = [s for s in args.select_sites.split(",") if s]
    print(json.dumps(write_viewports(dataset, args.out, sites), indent=1))


if __name__ == "__main__":
    main()
