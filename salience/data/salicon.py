"""SALICON: Jiang, Huang, Duan and Zhao, "SALICON: Saliency in context", CVPR 2015.

Observers on Amazon Mechanical Turk moved a mouse over a blurred 640x480 MS COCO image that was
sharp only around the cursor; the recorded mouse points stand in for fixations. The release's
COCO-style annotation files (``fixations_train2014.json``, ``fixations_val2014.json``; the
format read by the official ``salicon-api`` and ``salicon-evaluation`` code) look like::

    {"type": "fixations",
     "images": [{"id": 102625, "file_name": "COCO_val2014_000000102625.jpg",
                 "height": 480, "width": 640, ...}, ...],
     "annotations": [{"id": 1, "image_id": 102625, "worker_id": 307,
                      "fixations": [[row, col], ...]}, ...]}

Each annotation is one worker's viewing of one image. ``fixations`` pairs are 1-based
(row, column): the official evaluation reads a map at ``[row - 1][col - 1]``. The points carry no
time, so onsets are absent and durations unknown (NaN), and the dataset kind is ``"mouse"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath

# There is no physical viewing geometry (each worker used their own screen). The SALICON maps
# blur the points with sigma = 19 px (salicon-api ``buildFixMap``), i.e. one degree of the OSIE
# set-up the paradigm was validated against (24 px/deg on 800x600, NUS ``config.m``) scaled to the
# 640 px wide images.
SALICON_PIXELS_PER_DEGREE = 24.0 * 640 / 800


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataFormatError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot be read ({exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataFormatError(f"{path}: missing list {key!r}")
    return data


def _entry(entry: object, keys: tuple[str, ...], path: Path, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise DataFormatError(f"{path}: {where} is not an object")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise DataFormatError(f"{path}: {where} lacks {', '.join(missing)}")
    return entry


def _size(image: dict[str, Any], path: Path, where: str) -> tuple[int, int]:
    size = (image["height"], image["width"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise DataFormatError(f"{path}: {where} needs positive integer height and width")
    return size


def _points(value: object, path: Path, where: str) -> np.ndarray:
    """``[[row, col], ...]`` as an (n, 2) float array."""
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: {where}: fixations are not numbers ({exc})") from exc
    if points.size == 0:
        return np.zeros((0, 2))
    if points.ndim != 2 or points.shape[1] != 2:
        raise DataFormatError(
            f"{path}: {where}: fixations must be [row, col] pairs, got shape {points.shape}"
        )
    if not np.isfinite(points).all():
        raise DataFormatError(f"{path}: {where}: fixations contain NaN or infinite values")
    return points


def _image_id(value: object, path: Path, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataFormatError(
            f"{path}: {where}: image id must be an integer or a string, got {value!r}"
        )
    return value


def load_salicon(
    root: str | Path,
    annotations: str = "fixations_train2014.json",
    images: str = "images/train",
    pixels_per_degree: float = SALICON_PIXELS_PER_DEGREE,
    name: str = "salicon",
) -> Dataset:
    """Read a SALICON annotation file with its images (paths relative to ``root``).

    Every image listed in the file becomes a stimulus, with id the file name's stem and size
    from the metadata; its file must exist. An annotation for an image id the file does not
    list is an error. Points outside the image are dropped and counted in ``Dataset.dropped``;
    annotations with no point left are omitted. ``split.json`` in ``root``, if present, gives
    the splits.
    """
    root = Path(root)
    ann_path, image_dir = root / annotations, root / images
    data = _read_json(ann_path)
    entries: dict[int | str, tuple[Path, tuple[int, int]]] = {}
    for k, raw in enumerate(data["images"]):
        where = f"images[{k}]"
        image = _entry(raw, ("id", "file_name", "height", "width"), ann_path, where)
        image_id = _image_id(image["id"], ann_path, where)
        if image_id in entries:
            raise DataFormatError(f"{ann_path}: {where}: image id {image_id} repeated")
        image_path = image_dir / str(image["file_name"])
        if not image_path.is_file():
            raise DataFormatError(f"{ann_path}: {where}: image file {image_path} not found")
        entries[image_id] = (image_path, _size(image, ann_path, where))
    scanpaths: dict[int | str, list[Scanpath]] = {image_id: [] for image_id in entries}
    for k, raw in enumerate(data["annotations"]):
        where = f"annotations[{k}]"
        ann = _entry(raw, ("image_id", "worker_id", "fixations"), ann_path, where)
        image_id = _image_id(ann["image_id"], ann_path, where)
        if image_id not in entries:
            raise DataFormatError(f"{ann_path}: {where}: unknown image id {image_id!r}")
        points = _points(ann["fixations"], ann_path, where)
        if len(points) == 0:
            continue
        scanpaths[image_id].append(
            Scanpath(
                str(ann["worker_id"]),
                points[:, 1] - 1.0,
                points[:, 0] - 1.0,
                np.full(len(points), math.nan),
            )
        )
    stimuli = [
        (image_path.stem, image_path, size, scanpaths[image_id])
        for image_id, (image_path, size) in entries.items()
    ]
    return Dataset.gather(name, root, stimuli, pixels_per_degree, kind="mouse")
