"""CAT2000: Borji and Itti, "CAT2000: A large scale fixation dataset for boosting saliency
research", CVPR 2015 workshop on the future of datasets (arXiv:1505.03581).

The training set (``trainSet.zip`` of the MIT saliency benchmark) is laid out as::

    Stimuli/<Category>/<n>.jpg         1920x1080 images, 20 categories
    FIXATIONMAPS/<Category>/<n>.jpg    blurred fixation maps (not read here)
    FIXATIONLOCS/<Category>/<n>.mat    variable ``fixLocs``: image-sized binary map, 1 = fixated

(``<n>`` is zero-padded, e.g. ``Action/001``; the benchmark's own CAT2000 evaluation script reads
``fixLocs`` this way.) ``fixLocs`` pools every observer of the image: a nonzero entry at 1-based
(row r, column c) is a fixation at x = c - 1, y = r - 1. It holds neither observer nor order nor
duration. Per-observer fixation trains exist only in ``allFixData.mat``, a MATLAB
``containers.Map`` that scipy cannot decode (pysaliency runs MATLAB to unpack it), so each image
gets a single scanpath of observer :data:`UNKNOWN_OBSERVER` holding its fixated pixels in raster
order (row by row), durations unknown. Stimuli without a ``FIXATIONLOCS`` file (the test set)
are not loaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from salience.data.dataset import (
    DataFormatError,
    Dataset,
    Scanpath,
    Stimulus,
    image_size,
    read_mat,
    read_splits,
)

# Borji and Itti: observers sat 106 cm from a 42" (16:9) screen showing the 1920x1080 images
# full screen, so one degree at the screen centre spans about 38 pixels.
_SCREEN_WIDTH_CM = 42 * 2.54 * 16 / math.hypot(16, 9)
CAT2000_PIXELS_PER_DEGREE = 1920 / _SCREEN_WIDTH_CM * 106 * math.tan(math.radians(1))

UNKNOWN_OBSERVER = "unknown"


def _fixation_map(path: Path) -> np.ndarray:
    """The ``fixLocs`` map of one ``.mat`` file as a 2-D float array."""
    mat = read_mat(path)
    if "fixLocs" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"{path}: no variable 'fixLocs' (found {found})")
    try:
        locs = np.asarray(mat["fixLocs"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: fixLocs is not numeric ({exc})") from exc
    if locs.ndim != 2:
        raise DataFormatError(f"{path}: fixLocs must be a 2-D map, got shape {locs.shape}")
    if not np.isfinite(locs).all():
        raise DataFormatError(f"{path}: fixLocs contains NaN or infinite values")
    return locs


def _order(path: Path) -> tuple[str, float, str]:
    """Sort key: category, then image number (``2`` before ``10``)."""
    stem = path.stem
    return path.parent.name, float(stem) if stem.isdigit() else math.inf, stem


def load_cat2000(
    root: str | Path,
    pixels_per_degree: float = CAT2000_PIXELS_PER_DEGREE,
    name: str = "cat2000",
) -> Dataset:
    """Read CAT2000 from ``root`` (``trainSet/``: ``Stimuli/`` and ``FIXATIONLOCS/``).

    Stimulus ids are ``<Category>/<n>``. A ``FIXATIONLOCS`` file whose image is missing, or whose
    map is not the image's size, is an error. The map cannot place a fixation outside the
    image, so ``Dataset.dropped`` is always 0. ``split.json`` in ``root``, if present, gives the
    splits.
    """
    root = Path(root)
    loc_dir, image_dir = root / "FIXATIONLOCS", root / "Stimuli"
    if not loc_dir.is_dir():
        raise DataFormatError(f"{loc_dir}: folder not found")
    mat_paths = sorted(
        (p for p in loc_dir.glob("*/*.mat") if not p.name.startswith(".")), key=_order
    )
    if not mat_paths:
        raise DataFormatError(f"{loc_dir}: no <Category>/<n>.mat files")
    stimuli = []
    for mat_path in mat_paths:
        category = mat_path.parent.name
        image_path = image_dir / category / f"{mat_path.stem}.jpg"
        size = image_size(image_path)
        locs = _fixation_map(mat_path)
        if locs.shape != size:
            raise DataFormatError(
                f"{mat_path}: fixLocs is {locs.shape[0]}x{locs.shape[1]} but {image_path} "
                f"is {size[0]}x{size[1]} (height x width)"
            )
        rows, cols = np.nonzero(locs)
        scanpaths = ()
        if len(rows):
            scanpaths = (
                Scanpath(
                    UNKNOWN_OBSERVER,
                    cols.astype(np.float64),
                    rows.astype(np.float64),
                    np.full(len(rows), np.nan),
                ),
            )
        stimuli.append(Stimulus(f"{category}/{mat_path.stem}", image_path, size, scanpaths))
    split_path = root / "split.json"
    splits = read_splits(split_path) if split_path.is_file() else {}
    return Dataset(name, root, stimuli, pixels_per_degree, splits, kind="eye")
