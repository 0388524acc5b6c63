"""CAT2000: Borji and Itti, "CAT2000: A large scale fixation dataset for boosting saliency
research", CVPR 2015 workshop on the future of datasets (arXiv:1505.03581).

The training set (``trainSet.zip`` of the MIT saliency benchmark) is laid out as::

    Stimuli/<Category>/<n>.jpg         1920x1080 images, 20 categories
    FIXATIONMAPS/<Category>/<n>.jpg    blurred fixation maps (not read here)
    FIXATIONLOCS/<Category>/<n>.mat    every observer's fixations pooled in one binary map
    allFixData.mat                     the fixations of each observer, in order

(``<n>`` is zero-padded, e.g. ``Action/001``.) Only ``allFixData.mat`` tells observers apart, and
the gold standard (leave one observer out) needs them, so it is what this reader reads; the pooled
``FIXATIONLOCS`` maps are not used. It holds ``allData``, a MATLAB ``containers.Map`` from the
image's path under ``Stimuli`` (``Action/001.jpg``) to a cell of structs, one per observer and
image, each with ``name`` (the recording, ``<session>-<n>-<observer>.eye``) and ``data`` (one row
per fixation in viewing order: x, y in 1-based pixels, then columns not read here). scipy cannot
decode a ``containers.Map`` (pysaliency runs MATLAB to unpack it); mat-io can (the optional extra
``cat2000``: it brings pandas along).

As in pysaliency's version 1.1 of this dataset, a fixation repeating its predecessor's exact
position is a duplicate of it and is removed. Durations are unknown (NaN).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath, image_size

# Borji and Itti: observers sat 106 cm from a 42" (16:9) screen showing the 1920x1080 images
# full screen, so one degree at the screen centre spans about 38 pixels.
_SCREEN_WIDTH_CM = 42 * 2.54 * 16 / math.hypot(16, 9)
CAT2000_PIXELS_PER_DEGREE = 1920 / _SCREEN_WIDTH_CM * 106 * math.tan(math.radians(1))

FIXATION_FILE = "allFixData.mat"


def _records(value: object) -> Iterator[np.void]:
    """Every struct with ``name`` and ``data`` in a (nested) cell or struct array."""
    array = np.asarray(value)
    if array.dtype.names is not None:
        if {"name", "data"} <= set(array.dtype.names):
            yield from array.reshape(-1)
        return
    if array.dtype == object:
        for item in array.reshape(-1):
            yield from _records(item)


def _text(value: object) -> str:
    """A MATLAB char array (possibly wrapped in 1x1 arrays) as a str."""
    array = np.asarray(value).reshape(-1)
    return "".join(str(v) for v in array).strip()


def _observer(recording: str) -> str:
    """``<session>-<n>-<observer>.eye`` -> ``<observer>``; other names are kept whole."""
    stem = recording.removesuffix(".eye")
    return stem.rsplit("-", 1)[-1] if "-" in stem else stem


def _scanpath(record: np.void, where: str) -> Scanpath:
    """One observer's fixations, 0-based, consecutive duplicates removed."""
    recording = _text(record["name"])
    if not recording:
        raise DataFormatError(f"{where}: a record with an empty 'name'")
    try:
        data = np.asarray(record["data"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}, {recording}: 'data' is not numeric ({exc})") from exc
    if data.size == 0:
        data = np.zeros((0, 2))
    if data.ndim != 2 or data.shape[1] < 2:
        raise DataFormatError(
            f"{where}, {recording}: 'data' must have one row per fixation with x, y in the first "
            f"two columns, got shape {data.shape}"
        )
    x, y = data[:, 0] - 1.0, data[:, 1] - 1.0
    repeat = np.zeros(len(x), dtype=bool)
    repeat[1:] = (x[1:] == x[:-1]) & (y[1:] == y[:-1])
    x, y = x[~repeat], y[~repeat]
    return Scanpath(_observer(recording), x, y, np.full(len(x), np.nan))


def _order(stimulus_id: str) -> tuple[str, float, str]:
    """Sort key: category, then image number (``2`` before ``10``)."""
    category, _, stem = stimulus_id.rpartition("/")
    return category, float(stem) if stem.isdigit() else math.inf, stem


def _read_map(path: Path) -> Any:
    """The ``allData`` map of ``allFixData.mat``: image path -> cell of observer records."""
    try:
        with warnings.catch_warnings():  # pandas, imported by mat-io, warns about its options
            warnings.simplefilter("ignore")
            from matio import load_from_mat
            from matio.utils import MatlabContainerMap
            from matio.utils.matclass import MatReadError
    except ModuleNotFoundError as exc:
        raise DataFormatError(
            f"{path}: reading CAT2000 needs mat-io (pip install 'salience[cat2000]')"
        ) from exc
    if not path.is_file():
        raise DataFormatError(
            f"{path}: file not found (CAT2000's per-observer fixations are in trainSet/"
            f"{FIXATION_FILE})"
        )
    try:
        mat = load_from_mat(path)
    except (MatReadError, OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({exc})") from exc
    data = mat.get("allData")
    if not isinstance(data, MatlabContainerMap):
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(
            f"{path}: expected a containers.Map named 'allData' (found variables {found})"
        )
    return data


def load_cat2000(
    root: str | Path,
    pixels_per_degree: float = CAT2000_PIXELS_PER_DEGREE,
    name: str = "cat2000",
) -> Dataset:
    """Read CAT2000 from ``root`` (``trainSet/``: ``Stimuli/`` and ``allFixData.mat``).

    Stimulus ids are ``<Category>/<n>``, one scanpath per observer. A map key whose image is
    missing is an error. Fixations outside the image (or not finite) are dropped and counted
    in ``Dataset.dropped``. ``split.json`` in ``root``, if present, gives the splits.
    """
    root = Path(root)
    path = root / FIXATION_FILE
    image_dir = root / "Stimuli"
    by_id: dict[str, tuple[str, Path, tuple[int, int], list[Scanpath]]] = {}
    for key, value in _read_map(path).items():
        relative = str(key).replace("\\", "/").strip("/")
        category, _, file_name = relative.rpartition("/")
        if not category or not file_name:
            raise DataFormatError(f"{path}: key {key!r} is not <Category>/<image file>")
        stem = Path(file_name).stem
        stimulus_id = f"{category}/{stem}"
        if stimulus_id in by_id:
            raise DataFormatError(f"{path}: image {stimulus_id} appears under two keys")
        image_path = image_dir / category / f"{stem}.jpg"
        size = image_size(image_path, f"{path}, key {key!r}")
        scanpaths = [_scanpath(record, f"{path}, key {key!r}") for record in _records(value)]
        by_id[stimulus_id] = (stimulus_id, image_path, size, scanpaths)
    if not by_id:
        raise DataFormatError(f"{path}: 'allData' holds no image")
    entries = [by_id[i] for i in sorted(by_id, key=_order)]
    return Dataset.gather(name, root, entries, pixels_per_degree)
