"""A plain CSV of fixations: the format any eye-tracker export can be turned into.

One row per fixation, comma-separated, UTF-8 (a byte-order mark is allowed), with a header row::

    image,observer,x,y,onset,duration
    street/001.jpg,s01,512.0,384.0,0.000,0.250
    street/001.jpg,s01,700.5,300.2,0.280,0.180
    street/001.jpg,s02,498.0,390.5,0.000,0.310
    beach.png,007,10,20,,

Columns (names exact and lower case, in any order):

``image`` (required)
    Path of the image file, relative to the images folder, with ``/`` separators. It is also
    the stimulus id, verbatim (``street/001.jpg``), so ``split.json`` lists these strings.
``observer`` (required)
    Any text; kept as a string, so ``007`` stays ``007``.
``x``, ``y`` (required)
    Fixation position in 0-based pixels of the image as stored in the file: x to the right,
    y down, pixel (row i, column j) covering ``j <= x < j + 1`` and ``i <= y < i + 1``.
    Decimals are welcome; NaN, empty or non-numeric values are errors. Positions outside the
    image are dropped and counted in ``Dataset.dropped``.
``onset``, ``duration`` (optional, either or both)
    Seconds: time from image onset to the start of the fixation, and the fixation's length.
    An empty cell means unknown (NaN); a negative duration is an error.

Any other column name is an error, so a typo such as ``durations`` cannot pass silently. Rows
with the same (image, observer) form one scanpath and must appear in viewing order; rows of
different scanpaths may interleave. Stimuli and observers keep the order in which they first
appear.

Converting an export: take the fixation events (not raw samples), subtract the on-screen
position of the image's top-left corner from screen coordinates (and divide by the display
scale if the image was resized for display), subtract 1 from 1-based (MATLAB) pixels, divide
milliseconds by 1000, and write one row per fixation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath, csv_rows, image_size

REQUIRED_COLUMNS = ("image", "observer", "x", "y")
OPTIONAL_COLUMNS = ("onset", "duration")
DEFAULT_FILE = "fixations.csv"
DEFAULT_IMAGES = "images"


def _number(text: str, column: str, where: str, optional: bool) -> float:
    if optional and text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError as exc:
        raise DataFormatError(f"{where}: {column} {text!r} is not a number") from exc
    if math.isnan(value) and not optional:
        raise DataFormatError(f"{where}: {column} is NaN")
    if math.isinf(value):
        raise DataFormatError(f"{where}: {column} is infinite")
    return value


def _header_problem(header: list[str]) -> str | None:
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    unknown = [name for name in header if name not in allowed]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        return (
            f"header {','.join(header)!r} must name each of {', '.join(REQUIRED_COLUMNS)} "
            f"once, optionally {' and '.join(OPTIONAL_COLUMNS)}, and nothing else"
        )
    return None


def load_csv(
    root: str | Path,
    images: str | Path = DEFAULT_IMAGES,
    *,
    pixels_per_degree: float,
    name: str | None = None,
    kind: str = "eye",
) -> Dataset:
    """Read a fixation CSV (format in the module docstring).

    ``root`` is the CSV file, or a folder holding ``fixations.csv``. ``images`` is the folder
    the ``image`` column is relative to, itself relative to the CSV's folder unless absolute.
    ``pixels_per_degree`` must come from the experiment's screen and viewing distance;
    ``kind`` is ``"eye"`` or ``"mouse"``. ``split.json`` beside the CSV, if present, gives the
    splits.
    """
    if kind not in ("eye", "mouse"):
        raise ValueError(f"kind must be 'eye' or 'mouse', got {kind!r}")
    if not (pixels_per_degree > 0 and math.isfinite(pixels_per_degree)):
        raise ValueError(f"pixels_per_degree must be a positive number, got {pixels_per_degree}")
    root = Path(root)
    path = root / DEFAULT_FILE if root.is_dir() else root
    folder = path.parent
    image_dir = folder / images
    rows: dict[str, dict[str, list[tuple[float, float, float, float]]]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    has_onset = False
    for where, cell in csv_rows(path, _header_problem):
        has_onset = "onset" in cell
        image = cell["image"]
        if not image or not cell["observer"]:
            raise DataFormatError(f"{where}: empty image or observer")
        if image not in sizes:
            sizes[image] = image_size(image_dir / image, where)
        fixation = (
            _number(cell["x"], "x", where, optional=False),
            _number(cell["y"], "y", where, optional=False),
            _number(cell.get("onset", ""), "onset", where, optional=True),
            _number(cell.get("duration", ""), "duration", where, optional=True),
        )
        if fixation[3] < 0:
            raise DataFormatError(f"{where}: negative duration {fixation[3]}")
        rows.setdefault(image, {}).setdefault(cell["observer"], []).append(fixation)
    if not rows:
        raise DataFormatError(f"{path}: no fixations, only a header row")
    entries = []
    for image, by_observer in rows.items():
        scanpaths = []
        for observer, fixations in by_observer.items():
            x, y, onset, duration = np.asarray(fixations, dtype=np.float64).T
            scanpaths.append(Scanpath(observer, x, y, duration, onset if has_onset else None))
        entries.append((image, image_dir / image, sizes[image], scanpaths))
    return Dataset.gather(name or path.stem, folder, entries, pixels_per_degree, kind=kind)
