"""Regions of interest on an image: rectangles and polygons, from the command line or JSON.

A :class:`Region` holds its outline as vertices in the dataset convention (0-based float pixels,
x to the right, y down; pixel ``(row j, col i)`` covers ``i <= x < i + 1``, ``j <= y < j + 1``),
or, when ``normalized``, as fractions of the image width (x) and height (y), so one region file
fits every size of the same layout. :meth:`Region.mask` rasterizes it: a pixel belongs to the
region when its center ``(i + 0.5, j + 0.5)`` lies inside the outline (even-odd rule; edges are
half-open like the pixels, so a rect ``x, y, w, h`` with integer corners holds exactly ``w * h``
pixels and rects that tile the image give a partition of it). A region that extends past the image
is clipped to it; one that covers no pixel of the image is an error.

Errors are :class:`RegionError` (a ``ValueError``) whose message names the region (or file) and
what is wrong with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Size = tuple[int, int]  # (height, width)
RegionKind = Literal["rect", "polygon"]

_UNITS = {"px": False, "fraction": True}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CLI_PATTERN = re.compile(
    rf"^(?P<name>.+):(?P<numbers>{_NUMBER}(?:,{_NUMBER}){{3}})(?P<unit>px|%)?$"
)


class RegionError(ValueError):
    """A region that cannot be used; the message names the region and the problem."""


@dataclass(frozen=True)
class Region:
    """A named rectangle or polygon on an image.

    ``points`` are the outline's (x, y) vertices in order (a rect's four corners, clockwise from
    its top-left), in pixels, or in fractions of width and height when ``normalized``. Build rects
    with :meth:`rect`; construction checks the name, vertex count, finiteness and area.
    """

    name: str
    kind: RegionKind
    points: tuple[tuple[float, float], ...]
    normalized: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RegionError(f"region name must be a non-empty string, got {self.name!r}")
        if self.kind not in ("rect", "polygon"):
            raise RegionError(
                f"region {self.name!r}: kind must be 'rect' or 'polygon', got {self.kind!r}"
            )
        if len(self.points) < 3:
            raise RegionError(
                f"region {self.name!r}: a polygon needs at least 3 vertices, got {len(self.points)}"
            )
        try:
            vertices = np.asarray(self.points, dtype=np.float64)  # (m, 2)
        except (TypeError, ValueError):
            vertices = np.zeros(0)
        if vertices.shape != (len(self.points), 2):
            raise RegionError(
                f"region {self.name!r}: every vertex must be an (x, y) pair of numbers, "
                f"got {self.points!r}"
            )
        if not np.isfinite(vertices).all():
            raise RegionError(f"region {self.name!r}: coordinates must be finite numbers")
        if self.kind == "rect" and not _is_rect(vertices):
            raise RegionError(
                f"region {self.name!r}: a rect needs its 4 axis-aligned corners clockwise from "
                f"the top-left (build it with Region.rect), got {list(self.points)}"
            )
        crossing = _first_crossing(vertices) if self.kind == "polygon" else None
        if crossing is not None:
            i, j = crossing
            raise RegionError(
                f"region {self.name!r}: the outline crosses itself (edge {i + 1}, from vertex "
                f"{i + 1} to {i + 2}, meets edge {j + 1}); list the vertices in order around "
                "the region, or split it into regions that do not cross"
            )
        if self.area() == 0.0:
            raise RegionError(f"region {self.name!r}: the outline has zero area")

    @classmethod
    def rect(
        cls, name: str, x: float, y: float, w: float, h: float, *, normalized: bool = False
    ) -> Region:
        """The rectangle ``[x, x + w) x [y, y + h)``; width and height must be positive."""
        values = (x, y, w, h)
        if not all(math.isfinite(v) for v in values):
            raise RegionError(f"region {name!r}: x, y, w, h must be finite numbers, got {values}")
        if w <= 0 or h <= 0:
            raise RegionError(
                f"region {name!r}: width and height must be positive (zero area), got w={w}, h={h}"
            )
        corners = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
        return cls(name, "rect", corners, normalized)

    def vertices(self, size: Size) -> np.ndarray:
        """The outline in pixels of an image of ``size == (height, width)``: (m, 2) float64."""
        vertices = np.asarray(self.points, dtype=np.float64)  # (m, 2) x, y
        if self.normalized:
            height, width = size
            vertices = vertices * np.array([width, height], dtype=np.float64)
        return vertices

    def area(self) -> float:
        """Area enclosed by the outline (shoelace formula), in the region's own units."""
        v = np.asarray(self.points, dtype=np.float64)  # (m, 2)
        x, y = v[:, 0], v[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)

    def mask(self, size: Size) -> np.ndarray:
        """Pixels of a ``size == (height, width)`` image whose centers lie inside: bool (H, W).

        Parts outside the image are clipped; a region covering no pixel center of the image
        (entirely outside, or thinner than a pixel between centers) is a :class:`RegionError`.
        """
        height, width = size
        mask = _polygon_mask(self.vertices(size), size)
        if not mask.any():
            unit = "fractions" if self.normalized else "px"
            raise RegionError(
                f"region {self.name!r} ({self.kind}, {unit} {list(self.points)}) covers no pixel "
                f"of the {width}x{height} image (entirely outside it, or too thin)"
            )
        return mask

    def to_dict(self) -> dict[str, Any]:
        """The JSON form read by :func:`read_regions` (with its own ``units``)."""
        units = "fraction" if self.normalized else "px"
        if self.kind == "rect":
            (x0, y0), _, (x1, y1), _ = self.points
            return {"name": self.name, "rect": [x0, y0, x1 - x0, y1 - y0], "units": units}
        return {"name": self.name, "polygon": [list(p) for p in self.points], "units": units}


def _is_rect(v: np.ndarray) -> bool:
    """Whether (m, 2) vertices are the corners of an axis-aligned rectangle, as Region.rect
    makes."""
    if v.shape != (4, 2):
        return False
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = v
    return bool(x0 == x3 and x1 == x2 and y0 == y1 and y2 == y3)


def _first_crossing(vertices: np.ndarray) -> tuple[int, int] | None:
    """The first pair (i, j), i < j, of non-adjacent outline edges that touch or cross, or None.

    Edge k runs from vertex k to vertex k + 1 (the last back to the first). Two segments meet
    when each one's end points are not strictly on one side of the other's line, and their
    bounding boxes overlap (which settles collinear ones).
    """
    m = len(vertices)
    start = vertices  # (m, 2)
    end = np.roll(vertices, -1, axis=0)  # (m, 2)
    i, j = np.triu_indices(m, k=2)  # pairs that are not neighbours along the outline ...
    keep = ~((i == 0) & (j == m - 1))  # ... the first and last edges are neighbours too
    i, j = i[keep], j[keep]

    def side(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Sign of the cross product (b - a) x (c - a): which side of line a-b point c is on."""
        return np.sign(
            (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        )

    p1, p2, p3, p4 = start[i], end[i], start[j], end[j]  # (pairs, 2) each
    straddle = (side(p1, p2, p3) * side(p1, p2, p4) <= 0) & (
        side(p3, p4, p1) * side(p3, p4, p2) <= 0
    )
    low_i, high_i = np.minimum(p1, p2), np.maximum(p1, p2)
    low_j, high_j = np.minimum(p3, p4), np.maximum(p3, p4)
    boxes = ((low_i <= high_j) & (low_j <= high_i)).all(axis=1)
    hits = np.nonzero(straddle & boxes)[0]
    return (int(i[hits[0]]), int(j[hits[0]])) if len(hits) else None


def _polygon_mask(vertices: np.ndarray, size: Size) -> np.ndarray:
    """Scanline fill at pixel centers, even-odd rule, edges half-open (``lo <= y < hi``).

    Pillow's ``ImageDraw.polygon`` is not used: it fills boundary pixels and rounds fractional
    vertices (a rect ``[2, 7) x [3, 9)`` comes out 6x7 = 42 pixels instead of 30).
    """
    height, width = size
    x0, y0 = vertices[:, 0], vertices[:, 1]  # (m,) each: edge starts
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)  # (m,) each: edge ends
    centers_y = np.arange(height, dtype=np.float64)[:, None] + 0.5  # (H, 1)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)  # (m,) each
    crosses = (centers_y >= lo) & (centers_y < hi)  # (H, m); horizontal edges never cross
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (centers_y - y0) / (y1 - y0)  # (H, m)
    cross_x = x0 + t * (x1 - x0)  # (H, m): where each edge meets each row's center line
    rows, edges = np.nonzero(crosses)
    # a crossing at x toggles inside/outside for every pixel center >= x: columns ceil(x - 0.5) on
    first_col = np.clip(np.ceil(cross_x[rows, edges] - 0.5), 0, width).astype(np.intp)
    toggles = np.zeros((height, width + 1), dtype=np.int32)  # (H, W + 1)
    np.add.at(toggles, (rows, first_col), 1)
    return (np.cumsum(toggles[:, :width], axis=1) & 1).astype(bool)  # (H, W)


def _numbers(values: object, count: int | None, where: str) -> list[float]:
    """A list of finite numbers (``count`` of them when given), or a RegionError naming
    ``where``."""
    if not isinstance(values, list) or (count is not None and len(values) != count):
        expected = f"a list of {count} numbers" if count is not None else "a list of numbers"
        raise RegionError(f"{where}: expected {expected}, got {values!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise RegionError(f"{where}: expected numbers, got {values!r}")
    if not all(math.isfinite(v) for v in values):
        raise RegionError(f"{where}: coordinates must be finite numbers, got {values!r}")
    return [float(v) for v in values]


def parse_region(text: str) -> Region:
    """A rectangle from the command-line form ``NAME:x,y,w,h`` (top-left corner, width, height).

    Units: a ``px`` suffix means pixels (``logo:10,20,200,80px``), a ``%`` suffix means percent of
    the image width (x, w) and height (y, h) (``logo:5,10,25,20%``). Without a suffix the numbers
    are fractions of width and height when all four lie in [0, 1] and the text has a decimal
    point (``logo:0.05,0.1,0.25,0.2``), and pixels otherwise (``logo:0,0,1,1`` is one pixel).
    """
    match = _CLI_PATTERN.match(text.strip())
    if match is None:
        raise RegionError(
            f"cannot read region {text!r}: expected NAME:x,y,w,h with an optional unit suffix, "
            "e.g. logo:10,20,200,80 (pixels), logo:0.05,0.1,0.25,0.2 (fractions of width and "
            "height: all four in [0, 1] with a decimal point) or logo:5,10,25,20% (percent)"
        )
    name, unit = match["name"].strip(), match["unit"]
    x, y, w, h = (float(v) for v in match["numbers"].split(","))
    if unit == "%":
        return Region.rect(name, x / 100, y / 100, w / 100, h / 100, normalized=True)
    if unit == "px":
        return Region.rect(name, x, y, w, h)
    fractions = "." in match["numbers"] and all(0.0 <= v <= 1.0 for v in (x, y, w, h))
    return Region.rect(name, x, y, w, h, normalized=fractions)


def _region_from_json(entry: object, index: int, default_units: str) -> Region:
    """One region of a region file; errors name the region (the caller adds the file)."""
    if not isinstance(entry, dict):
        raise RegionError(
            f"region {index + 1}: expected an object with 'name' and 'rect' or 'polygon'"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RegionError(f"region {index + 1}: missing 'name' (a non-empty string)")
    where = f"region {name!r}"
    unknown = set(entry) - {"name", "rect", "polygon", "units"}
    if unknown:
        raise RegionError(
            f"{where}: unknown keys {sorted(unknown)} (known: name, rect, polygon, units)"
        )
    shapes = [key for key in ("rect", "polygon") if key in entry]
    if len(shapes) != 1:
        raise RegionError(
            f"{where}: needs exactly one of 'rect' [x, y, w, h] or 'polygon' [[x, y], ...]"
        )
    units = entry.get("units", default_units)
    if units not in _UNITS:
        raise RegionError(f"{where}: units must be 'px' or 'fraction', got {units!r}")
    if shapes[0] == "rect":
        x, y, w, h = _numbers(entry["rect"], 4, f"{where} rect")
        return Region.rect(name, x, y, w, h, normalized=_UNITS[units])
    vertices = entry["polygon"]
    if not isinstance(vertices, list):
        raise RegionError(f"{where}: polygon must be a list of [x, y] vertices")
    points = tuple(
        (x, y)
        for x, y in (
            _numbers(v, 2, f"{where} polygon vertex {k + 1}") for k, v in enumerate(vertices)
        )
    )
    return Region(name, "polygon", points, _UNITS[units])


def read_regions(path: str | Path) -> tuple[Region, ...]:
    """Regions from a JSON file.

    The file is ``{"regions": [...], "units": "px" | "fraction"}`` or a bare list of regions
    (units then default to ``"px"``). Each region is ``{"name": ..., "rect": [x, y, w, h]}`` or
    ``{"name": ..., "polygon": [[x, y], [x, y], [x, y], ...]}``, optionally with its own ``units``.
    Names must be unique.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RegionError(f"{path}: region file not found") from None
    except UnicodeDecodeError as exc:
        raise RegionError(f"{path}: not valid JSON ({exc})") from None
    return parse_regions_json(text, str(path))


def parse_regions_json(text: str, where: str = "regions") -> tuple[Region, ...]:
    """Regions from JSON text in the form of a region file (see :func:`read_regions`), e.g. a
    request's; errors start with ``where``."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise RegionError(f"{where}: not valid JSON ({exc})") from None
    units = "px"
    if isinstance(data, dict):
        unknown = set(data) - {"regions", "units"}
        if "regions" not in data or unknown:
            raise RegionError(
                f"{where}: expected {{'regions': [...], 'units': 'px' | 'fraction'}} or a list; "
                f"found keys {sorted(data)}"
            )
        units = data.get("units", "px")
        if units not in _UNITS:
            raise RegionError(f"{where}: units must be 'px' or 'fraction', got {units!r}")
        data = data["regions"]
    if not isinstance(data, list) or not data:
        raise RegionError(f"{where}: expected a non-empty list of regions")
    try:
        return check_regions(_region_from_json(entry, k, units) for k, entry in enumerate(data))
    except RegionError as exc:
        raise RegionError(f"{where}: {exc}") from None


def grid_regions() -> tuple[Region, ...]:
    """The image cut into a 3 x 3 grid of equal rectangles (fractions of width and height),
    ``top-left`` ... ``bottom-right``: the regions a comparison uses when none are given."""
    rows, cols = ("top", "middle", "bottom"), ("left", "center", "right")
    return tuple(
        Region.rect(f"{r}-{c}", j / 3, i / 3, 1 / 3, 1 / 3, normalized=True)
        for i, r in enumerate(rows)
        for j, c in enumerate(cols)
    )


def check_regions(regions: Iterable[Region]) -> tuple[Region, ...]:
    """The regions as a tuple, after checking there is at least one and no name repeats."""
    regions = tuple(regions)
    if not regions:
        raise RegionError("no regions given")
    seen: set[str] = set()
    for region in regions:
        if region.name in seen:
            raise RegionError(f"region {region.name!r}: duplicate name (names must be unique)")
        seen.add(region.name)
    return regions


def region_masks(regions: Sequence[Region], size: Size) -> list[np.ndarray]:
    """Each region's mask on an image of ``size == (height, width)``: bool (H, W) each."""
    return [region.mask(size) for region in regions]
