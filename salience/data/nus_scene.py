"""NUS Scene: 500 SUN2012 scene images, free viewing, 12 observers.

Liang, Jiang, Liang and Zhao (NUS VIP, 2015). ``tidy/fixations.mat`` holds ``fixations``, a
500 x 12 cell (image x observer, some cells empty) of N x 4 arrays in viewing order:
``[row, column, onset_s, duration_s]`` with 1-based pixels. The first column is y: read as (x, y),
19 % of the fixations on non-square images fall outside the image, read as (y, x) 0.01 % do
(``tests/data/test_nus_scene.py`` measures this). ``tidy/imgInfo.mat`` gives ``[height width]``
per image; images are ``stimuli/001.jpg`` to ``stimuli/500.jpg``.

No split is published: the project's fixed split (300 train, 100 val, 100 test, drawn once with a
seeded permutation) ships as ``salience/data/splits/nus-scene.json``; a ``split.json`` in the
dataset folder takes precedence.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath, image_size, read_mat

# The images come in many sizes and were shown rescaled to one display; we take the longer
# side to span about as much visual angle as OSIE's 800-pixel width (33 degrees at 24 px/deg).
NUS_SCENE_IMAGE_SPAN_DEGREES = 800 / 24.0


def _read(path: Path, variable: str) -> object:
    mat = read_mat(path, squeeze_me=True, struct_as_record=False)
    if variable not in mat:
        raise DataFormatError(f"{path}: no variable {variable!r}")
    return mat[variable]


def packaged_split() -> dict[str, list[str]]:
    """The project's committed train/val/test split of NUS Scene."""
    text = resources.files("salience.data").joinpath("splits/nus-scene.json").read_text()
    return {k: list(v) for k, v in json.loads(text).items()}


def load_nus_scene(root: str | Path) -> Dataset:
    """Read NUS Scene eye fixations; out-of-image fixations are dropped and counted."""
    root = Path(root)
    fix_path = root / "tidy" / "fixations.mat"
    info_path = root / "tidy" / "imgInfo.mat"
    cells = np.asarray(_read(fix_path, "fixations"), dtype=object)
    if cells.ndim != 2:
        raise DataFormatError(f"{fix_path}: 'fixations' should be an images x observers cell")
    info = _read(info_path, "imgInfo")
    if not hasattr(info, "size"):
        raise DataFormatError(f"{info_path}: imgInfo has no field 'size'")
    sizes = np.asarray(info.size).reshape(-1, 2)
    if len(sizes) != len(cells):
        raise DataFormatError(
            f"{info_path}: {len(sizes)} image sizes for {len(cells)} images in {fix_path.name}"
        )
    entries = []
    for i, row in enumerate(cells):
        stimulus_id = f"{i + 1:03d}"
        image_path = root / "stimuli" / f"{stimulus_id}.jpg"
        size = (int(sizes[i, 0]), int(sizes[i, 1]))
        if image_size(image_path) != size:
            raise DataFormatError(
                f"{image_path}: size {image_size(image_path)} differs from imgInfo {size}"
            )
        scanpaths = []
        for j, cell in enumerate(row):
            data = np.asarray(cell, dtype=np.float64)
            if data.size == 0:
                continue
            data = data.reshape(-1, 4) if data.ndim == 1 else data
            if data.ndim != 2 or data.shape[1] != 4:
                raise DataFormatError(
                    f"{fix_path}: image {stimulus_id}, observer {j + 1}: expected N x 4 "
                    f"[row, column, onset, duration], got shape {data.shape}"
                )
            if np.isnan(data).any():
                raise DataFormatError(
                    f"{fix_path}: image {stimulus_id}, observer {j + 1}: contains NaN"
                )
            scanpaths.append(
                Scanpath(str(j + 1), data[:, 1] - 1.0, data[:, 0] - 1.0, data[:, 3], data[:, 2])
            )
        entries.append((stimulus_id, image_path, size, scanpaths))
    return Dataset.gather(
        "nus-scene",
        root,
        entries,
        pixels_per_degree=24.0,
        default_splits=packaged_split(),
        image_span_degrees=NUS_SCENE_IMAGE_SPAN_DEGREES,
    )
