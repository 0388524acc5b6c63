"""EYEVIDO web browsing: eye tracking on 245 full-page screenshots of web pages (eyevis-tool).

The folder (``../shared/data/eyevido``, see its README) holds ``images/<page>.jpg`` (screenshots
halved to 959 px wide), ``pages.csv`` (``page,title,url,width,height,n_users,n_fixations``, sizes
of the halved images), ``fixations.csv`` (``page,user,order,x,y,onset_ms,duration_ms``) and
``split.json`` (train 9 sites, val 2; split by site so no screenshot is in both).

Conventions and caveats, as read here:

- ``x``, ``y`` are already in the halved images' pixels (source document pixels times 0.5),
  0-based, y down the whole page (scroll offset included). They are used unchanged;
  ``tests/data/test_eyevido.py`` checks they fit the shipped images and not the source scale.
- 36 placeholder rows (``x = y = -0.5``, ``duration_ms = -1``) are no fixations: they are
  removed, and counted in ``Dataset.dropped`` and ``Dataset.dropped_by_reason["placeholder"]``.
- Fixations outside the page (above its top, below its bottom, beside it) are removed and
  counted (``dropped_by_reason["outside"]``), as every reader does.
- Durations look capped by the recording at 0.8 s (:data:`DURATION_CAP_S`): about 10 % of the
  fixations are exactly 0.8 s, and the next one usually starts 20 to 35 ms later nearby, so a
  long dwell arrives as several fixations. They are kept as recorded, not merged.
- Onsets are seconds from the viewing's first recorded event; rows are put in ``order`` (the
  source's time order), which must number each viewing ``1..n`` once.
- This is task-driven browsing, not free viewing, with a median of one viewer per page.

Geometry: the pages were shown unscaled in a browser on a screen about 1920 px wide (the source
screenshots are 1918 px wide). We assume a 22 to 24 inch monitor at 60 to 65 cm, about
40 screen pixels per degree, i.e. :data:`EYEVIDO_PIXELS_PER_DEGREE` = 20 in the halved images.
The viewport height is not recorded; the shortest screenshots (69 pages) are 968 source px tall,
which is what a screenshot tool returns for a page shorter than the window, so the browser's
viewport was most likely 968 px (484 halved, :data:`EYEVIDO_VIEWPORT_HEIGHT`), a 1080-line
screen less the browser's bars.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from salience.data.dataset import DataFormatError, Dataset, Scanpath, csv_rows, image_size

EYEVIDO_PIXELS_PER_DEGREE = 20.0
EYEVIDO_VIEWPORT_HEIGHT = 484
DURATION_CAP_S = 0.8
FIXATION_COLUMNS = ("page", "user", "order", "x", "y", "onset_ms", "duration_ms")
PAGE_COLUMNS = ("page", "title", "url", "width", "height", "n_users", "n_fixations")


def site_of(page: str) -> str:
    """The web site of a page id (``s1_harvard_0`` -> ``harvard``): the unit of the split, and of
    any cross-validation on these pages (pages of one site share a layout)."""
    parts = page.split("_")
    return parts[1] if len(parts) >= 3 else page


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """:func:`csv_rows` of a CSV whose header must be exactly ``columns``."""

    def problem(header: list[str]) -> str | None:
        if tuple(header) == columns:
            return None
        return f"header {','.join(header)!r}, expected {','.join(columns)!r}"

    return csv_rows(path, problem)


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise DataFormatError(f"{where}: {column} {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise DataFormatError(f"{where}: {column} is {text!r}, not a finite number")
    return value


def _integer(text: str, column: str, where: str) -> int:
    value = _number(text, column, where)
    if value != int(value):
        raise DataFormatError(f"{where}: {column} {text!r} is not a whole number")
    return int(value)


def _read_pages(path: Path, image_dir: Path) -> dict[str, tuple[tuple[int, int], int]]:
    """page -> ((height, width), n_fixations listed), images checked against the listed size."""
    pages: dict[str, tuple[tuple[int, int], int]] = {}
    for where, row in _rows(path, PAGE_COLUMNS):
        page = row["page"]
        if not page or page in pages:
            raise DataFormatError(f"{where}: page {page!r} is empty or listed twice")
        size = (_integer(row["height"], "height", where), _integer(row["width"], "width", where))
        image_path = image_dir / f"{page}.jpg"
        actual = image_size(image_path, where)
        if actual != size:
            raise DataFormatError(
                f"{image_path}: size (height, width) {actual}, {path} says {size}"
            )
        pages[page] = (size, _integer(row["n_fixations"], "n_fixations", where))
    if not pages:
        raise DataFormatError(f"{path}: no pages listed")
    return pages


def _is_placeholder(x: float, y: float, duration_ms: float) -> bool:
    return x == -0.5 and y == -0.5 and duration_ms == -1


def load_eyevido(root: str | Path, pixels_per_degree: float = EYEVIDO_PIXELS_PER_DEGREE) -> Dataset:
    """Read EYEVIDO into the common form (caveats and geometry in the module docstring).

    Placeholder rows and out-of-page fixations are removed; ``Dataset.dropped`` counts both,
    ``Dataset.dropped_by_reason`` each. Malformed files raise :class:`DataFormatError` naming
    the file (and line).
    """
    root = Path(root)
    pages_path, fix_path = root / "pages.csv", root / "fixations.csv"
    pages = _read_pages(pages_path, root / "images")
    # page -> user -> list of (order, x, y, onset_s, duration_s)
    rows: dict[str, dict[str, list[tuple[int, float, float, float, float]]]] = {}
    listed: dict[str, int] = {}
    placeholders = 0
    for where, row in _rows(fix_path, FIXATION_COLUMNS):
        page, user = row["page"], row["user"]
        if page not in pages:
            raise DataFormatError(f"{where}: page {page!r} is not in {pages_path.name}")
        if not user:
            raise DataFormatError(f"{where}: empty user")
        listed[page] = listed.get(page, 0) + 1
        order = _integer(row["order"], "order", where)
        x, y = _number(row["x"], "x", where), _number(row["y"], "y", where)
        onset_ms = _number(row["onset_ms"], "onset_ms", where)
        duration_ms = _number(row["duration_ms"], "duration_ms", where)
        if _is_placeholder(x, y, duration_ms):
            placeholders += 1
            continue
        if duration_ms < 0 or onset_ms < 0:
            raise DataFormatError(f"{where}: negative onset or duration")
        fixation = (order, x, y, onset_ms / 1000.0, duration_ms / 1000.0)
        rows.setdefault(page, {}).setdefault(user, []).append(fixation)
    for page, (_, n_listed) in pages.items():
        if listed.get(page, 0) != n_listed:
            raise DataFormatError(
                f"{fix_path}: {listed.get(page, 0)} rows for page {page!r}, "
                f"{pages_path} lists {n_listed}"
            )
    entries = []
    for page, (size, _) in pages.items():
        scanpaths = []
        for user, fixations in rows.get(page, {}).items():
            fixations.sort(key=lambda f: f[0])
            order, x, y, onset, duration = (np.asarray(c) for c in zip(*fixations, strict=True))
            if np.any(np.diff(order) == 0):
                raise DataFormatError(f"{fix_path}: page {page!r}, user {user}: repeated order")
            if np.any(np.diff(onset) < 0):
                raise DataFormatError(
                    f"{fix_path}: page {page!r}, user {user}: onsets decrease along 'order'"
                )
            scanpaths.append(Scanpath(user, x.astype(float), y.astype(float), duration, onset))
        entries.append((page, root / "images" / f"{page}.jpg", size, scanpaths))
    split_path = root / "split.json"
    if not split_path.is_file():
        raise DataFormatError(f"{split_path}: file not found (the fixed split by site)")
    dataset = Dataset.gather(
        "eyevido",
        root,
        entries,
        pixels_per_degree,
        dropped_by_reason={"placeholder": placeholders},
    )
    unknown = sorted({i for ids in dataset.splits.values() for i in ids} - set(pages))
    if unknown:
        raise DataFormatError(
            f"{split_path}: {len(unknown)} ids not in {pages_path.name}, e.g. {unknown[:3]}"
        )
    return dataset
