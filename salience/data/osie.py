"""OSIE and the NUS datasets that share its layout: ``stimuli/`` plus ``eye/fixations.mat``.

Xu, Jiang, Wang, Kankanhalli and Zhao, "Predicting human gaze beyond pixels", JoV 14(1):28, 2014.
``eye/fixations.mat`` holds ``fixations``, a cell of structs with ``img`` (file name) and
``subjects``, a cell of structs with ``fix_x``, ``fix_y`` (1-based pixels) and ``fix_duration``
(milliseconds), in viewing order. Other NUS collections (e.g. "Saliency in Crowd") use the same
layout with other image counts and sizes, so nothing here assumes 700 images of 800x600.

Mouse tracking (``mouse_amt/``, ``mouse_lab/``) stores one ``<id>.mat`` per image with a struct
``fixations`` of ``subj`` (N), ``order`` (N) and ``coord`` (N x 2). ``coord`` is (row, column):
its column maxima reach (600, 800) on 800x600 images, and read that way the mouse points agree
with the eye fixations on the same image (``tests/data/test_osie.py`` proves both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath, image_size, read_mat

# Free viewing on a 22" screen at 60 cm; the paper's 800x600 stimuli span about 33 x 25 degrees.
OSIE_PIXELS_PER_DEGREE = 24.0
MOUSE_KINDS = ("mouse_amt", "mouse_lab")


def _field(struct: object, name: str, path: Path, where: str) -> object:
    if not hasattr(struct, name):
        raise DataFormatError(f"{path}: {where} has no field {name!r}")
    return getattr(struct, name)


def _vector(value: object, path: Path, where: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if np.isnan(arr).any():
        raise DataFormatError(f"{path}: {where} contains NaN")
    return arr


def _stimulus_entries(path: Path) -> list[object]:
    mat = read_mat(path, squeeze_me=True, struct_as_record=False)
    if "fixations" not in mat:
        raise DataFormatError(f"{path}: no variable 'fixations' (found {sorted(mat)})")
    return list(np.atleast_1d(mat["fixations"]).ravel())


def load_osie(
    root: str | Path,
    pixels_per_degree: float = OSIE_PIXELS_PER_DEGREE,
    name: str = "osie",
) -> Dataset:
    """Read eye fixations of an OSIE-layout folder (``stimuli/``, ``eye/fixations.mat``).

    Fixations outside the image are dropped and counted in ``Dataset.dropped``; observers with
    no fixation left are omitted. ``split.json`` in ``root``, if present, gives the splits.
    """
    root = Path(root)
    mat_path = root / "eye" / "fixations.mat"
    entries = []
    for k, entry in enumerate(_stimulus_entries(mat_path)):
        where = f"entry {k + 1}"
        file_name = str(_field(entry, "img", mat_path, where))
        image_path = root / "stimuli" / file_name
        size = image_size(image_path)
        scanpaths = []
        subjects = np.atleast_1d(_field(entry, "subjects", mat_path, where)).ravel()
        for s, subject in enumerate(subjects):
            who = f"{where} ({file_name}), subject {s + 1}"
            x = _vector(_field(subject, "fix_x", mat_path, who), mat_path, f"{who} fix_x")
            y = _vector(_field(subject, "fix_y", mat_path, who), mat_path, f"{who} fix_y")
            duration_ms = _vector(
                _field(subject, "fix_duration", mat_path, who), mat_path, f"{who} fix_duration"
            )
            if not (len(x) == len(y) == len(duration_ms)):
                raise DataFormatError(
                    f"{mat_path}: {who}: fix_x, fix_y, fix_duration lengths differ "
                    f"({len(x)}, {len(y)}, {len(duration_ms)})"
                )
            scanpaths.append(Scanpath(str(s + 1), x - 1.0, y - 1.0, duration_ms / 1000.0))
        entries.append((Path(file_name).stem, image_path, size, scanpaths))
    return Dataset.gather(name, root, entries, pixels_per_degree)


def load_osie_mouse(
    root: str | Path,
    collection: str = "mouse_lab",
    pixels_per_degree: float = OSIE_PIXELS_PER_DEGREE,
) -> Dataset:
    """Read OSIE mouse tracking (``mouse_lab`` or ``mouse_amt``) as scanpaths of mouse positions.

    Each subject's points are ordered by ``order``; durations are unknown (NaN). Images without
    a mouse file are skipped; images are the same as the eye data's, sizes read from the files.
    """
    if collection not in MOUSE_KINDS:
        raise ValueError(f"collection must be one of {MOUSE_KINDS}, got {collection!r}")
    root = Path(root)
    folder = root / collection
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: folder not found")
    entries = []
    for mat_path in sorted(folder.glob("*.mat")):
        mat = read_mat(mat_path, squeeze_me=True, struct_as_record=False)
        if "fixations" not in mat:
            raise DataFormatError(f"{mat_path}: no variable 'fixations'")
        fx = mat["fixations"]
        subj = np.atleast_1d(_field(fx, "subj", mat_path, "fixations")).ravel()
        order = np.atleast_1d(_field(fx, "order", mat_path, "fixations")).ravel()
        coord = np.asarray(_field(fx, "coord", mat_path, "fixations"), dtype=np.float64)
        coord = coord.reshape(-1, 2) if coord.size else np.zeros((0, 2))
        if not (len(subj) == len(order) == len(coord)):
            raise DataFormatError(
                f"{mat_path}: subj, order and coord lengths differ "
                f"({len(subj)}, {len(order)}, {len(coord)})"
            )
        if np.isnan(coord).any():
            raise DataFormatError(f"{mat_path}: coord contains NaN")
        image_path = root / "stimuli" / f"{mat_path.stem}.jpg"
        size = image_size(image_path)
        scanpaths = []
        for who in np.unique(subj):
            sel = np.flatnonzero(subj == who)
            sel = sel[np.argsort(order[sel], kind="stable")]
            row, col = coord[sel, 0] - 1.0, coord[sel, 1] - 1.0
            scanpaths.append(Scanpath(str(who), col, row, np.full(len(sel), np.nan)))
        entries.append((mat_path.stem, image_path, size, scanpaths))
    name = f"osie-{collection.replace('_', '-')}"
    return Dataset.gather(name, root, entries, pixels_per_degree, kind="mouse")
