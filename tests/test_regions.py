"""Regions of interest: rasterized areas against analytic ones, the CLI and JSON forms, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from salience.analysis.regions import (
    Region,
    RegionError,
    check_regions,
    grid_regions,
    parse_region,
    parse_regions_json,
    read_regions,
    region_masks,
)

SIZE = (120, 200)  # (height, width)


def _centers_inside(size: tuple[int, int], inside) -> np.ndarray:
    """Brute-force reference mask: pixel centers for which ``inside(x, y)`` holds."""
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]] + 0.5
    return inside(xs, ys)


def test_rect_with_integer_corners_holds_exactly_w_times_h_pixels() -> None:
    mask = Region.rect("r", 10, 20, 30, 40).mask(SIZE)
    assert mask.shape == SIZE and mask.dtype == bool
    assert mask.sum() == 30 * 40
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 59, 10, 39)


@pytest.mark.parametrize(
    "rect", [(2.3, 3.4, 5.3, 4.8), (0.5, 0.5, 10.0, 0.01), (7.49, 1.0, 0.02, 5)]
)
def test_rect_with_fractional_corners_takes_the_pixels_whose_centers_are_inside(rect) -> None:
    x, y, w, h = rect
    expected = _centers_inside(
        SIZE, lambda px, py: (px >= x) & (px < x + w) & (py >= y) & (py < y + h)
    )
    mask = Region.rect("r", *rect).mask(SIZE) if expected.any() else None
    if mask is None:
        with pytest.raises(RegionError, match="covers no pixel"):
            Region.rect("r", *rect).mask(SIZE)
    else:
        np.testing.assert_array_equal(mask, expected)


def test_normalized_rect_scales_with_the_image() -> None:
    region = Region.rect("r", 0.25, 0.5, 0.5, 0.25, normalized=True)
    assert region.mask((100, 200)).sum() == 100 * 25
    assert region.mask((400, 800)).sum() == 400 * 100


def test_polygon_mask_matches_analytic_area_and_point_in_polygon() -> None:
    triangle = ((10.3, 20.7), (390.2, 50.1), (200.5, 380.9))
    region = Region("tri", "polygon", triangle)
    size = (400, 400)
    mask = region.mask(size)
    (x0, y0), (x1, y1), (x2, y2) = triangle
    area = abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / 2
    assert region.area() == pytest.approx(area)
    # each pixel on the outline is in or out: the count is within a perimeter's worth of pixels
    assert abs(mask.sum() - area) < 0.002 * area

    def inside(px, py):
        signs = [
            (bx - ax) * (py - ay) - (by - ay) * (px - ax)
            for (ax, ay), (bx, by) in zip(triangle, triangle[1:] + triangle[:1], strict=True)
        ]
        return ((signs[0] > 0) & (signs[1] > 0) & (signs[2] > 0)) | (
            (signs[0] < 0) & (signs[1] < 0) & (signs[2] < 0)
        )

    np.testing.assert_array_equal(mask, _centers_inside(size, inside))


def test_concave_polygon_with_integer_vertices_has_its_exact_area() -> None:
    # an L: the 60x50 rectangle minus its 40x30 top-right corner
    ell = ((10, 10), (30, 10), (30, 30), (70, 30), (70, 60), (10, 60))
    region = Region("L", "polygon", ell)
    assert region.area() == 60 * 50 - 40 * 20
    mask = region.mask(SIZE)
    assert mask.sum() == 60 * 50 - 40 * 20
    assert not mask[15, 50] and mask[15, 20] and mask[45, 50]


def test_rects_that_tile_the_image_partition_it() -> None:
    thirds = [
        Region.rect(f"t{i}{j}", i / 3, j / 3, 1 / 3, 1 / 3, normalized=True)
        for i in range(3)
        for j in range(3)
    ]
    masks = np.stack(region_masks(thirds, (101, 203)))  # sizes not divisible by 3
    np.testing.assert_array_equal(masks.sum(axis=0), 1)


def test_region_partly_outside_is_clipped() -> None:
    assert Region.rect("r", -10, -5, 30, 20).mask(SIZE).sum() == 20 * 15
    assert Region.rect("r", 190, 110, 50, 50).mask(SIZE).sum() == 10 * 10


def test_region_entirely_outside_is_an_error_naming_it() -> None:
    with pytest.raises(RegionError, match=r"'far'.*covers no pixel of the 200x120 image"):
        Region.rect("far", 300, 10, 20, 20).mask(SIZE)
    with pytest.raises(RegionError, match="'neg'"):
        Region.rect("neg", 0.2, -0.9, 0.5, 0.5, normalized=True).mask(SIZE)


@pytest.mark.parametrize(
    ("text", "normalized", "corners"),
    [
        ("logo:10,20,200,80", False, (10, 20, 210, 100)),
        ("logo:0.05,0.1,0.25,0.2", True, (0.05, 0.1, 0.3, 0.3)),
        ("logo:0,0,1,1", False, (0, 0, 1, 1)),  # no decimal point: pixels
        ("logo:0.5,0.5,2,2", False, (0.5, 0.5, 2.5, 2.5)),  # not all in [0, 1]: pixels
        ("logo:0.5,0.5,0.2,0.2px", False, (0.5, 0.5, 0.7, 0.7)),
        ("logo:5,10,25,20%", True, (0.05, 0.1, 0.3, 0.3)),
        ("call to action:1,2,3,4", False, (1, 2, 4, 6)),
        ("a:b:1,2,3,4", False, (1, 2, 4, 6)),  # the name runs to the last colon
        ("edge:-10,-10,20,20", False, (-10, -10, 10, 10)),
    ],
)
def test_parse_region_units_rule(text: str, normalized: bool, corners) -> None:
    region = parse_region(text)
    assert region.kind == "rect" and region.normalized is normalized
    (x0, y0), _, (x1, y1), _ = region.points
    np.testing.assert_allclose((x0, y0, x1, y1), corners)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("logo", "expected NAME:x,y,w,h"),
        ("logo:1,2,3", "expected NAME:x,y,w,h"),
        ("logo:1,2,3,4,5", "expected NAME:x,y,w,h"),
        ("logo:a,b,c,d", "expected NAME:x,y,w,h"),
        (":1,2,3,4", "expected NAME:x,y,w,h"),
        ("logo:1,2,nan,4", "expected NAME:x,y,w,h"),
        ("logo:1,2,0,4", "'logo'.*zero area"),
        ("logo:1,2,5,-4", "'logo'.*zero area"),
        ("logo:1,2,3,4cm", "expected NAME:x,y,w,h"),
        ("   :1,2,3,4", "expected NAME:x,y,w,h"),
    ],
)
def test_parse_region_errors(text: str, message: str) -> None:
    with pytest.raises(RegionError, match=message):
        parse_region(text)


def test_region_construction_errors() -> None:
    with pytest.raises(RegionError, match=r"'p'.*at least 3 vertices, got 2"):
        Region("p", "polygon", ((0, 0), (1, 1)))
    with pytest.raises(RegionError, match=r"'p'.*zero area"):
        Region("p", "polygon", ((0, 0), (1, 1), (2, 2)))
    with pytest.raises(RegionError, match=r"'p'.*finite"):
        Region("p", "polygon", ((0, 0), (1, float("inf")), (2, 0)))
    with pytest.raises(RegionError, match=r"'r'.*finite"):
        Region.rect("r", 0, float("nan"), 1, 1)
    with pytest.raises(RegionError, match=r"'p'.*\(x, y\) pair"):
        Region("p", "polygon", ((0, 0), (1, 1), (2,)))
    with pytest.raises(RegionError, match="name must be a non-empty string"):
        Region.rect("  ", 0, 0, 1, 1)
    with pytest.raises(RegionError, match="kind must be"):
        Region("c", "circle", ((0, 0), (1, 0), (0, 1)))  # type: ignore[arg-type]
    with pytest.raises(RegionError, match=r"'r'.*axis-aligned corners"):
        Region("r", "rect", ((0, 0), (1, 0), (0, 1)))


def _write(tmp_path, data, name="regions.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_read_regions_object_and_bare_list(tmp_path) -> None:
    path = _write(
        tmp_path,
        {
            "units": "fraction",
            "regions": [
                {"name": "logo", "rect": [0.1, 0.1, 0.2, 0.1]},
                {"name": "cta", "polygon": [[0.5, 0.5], [0.9, 0.5], [0.7, 0.9]]},
                {"name": "px", "rect": [0, 0, 10, 10], "units": "px"},
            ],
        },
    )
    logo, cta, px = read_regions(path)
    assert (logo.kind, logo.normalized, cta.kind, cta.normalized) == ("rect", True, "polygon", True)
    assert not px.normalized and px.mask(SIZE).sum() == 100
    bare = _write(tmp_path, [{"name": "a", "rect": [1, 2, 3, 4]}], "bare.json")
    (a,) = read_regions(bare)
    assert not a.normalized and a.mask(SIZE).sum() == 12


def test_regions_round_trip_through_json(tmp_path) -> None:
    regions = (
        Region.rect("logo", 10, 20, 30, 40),
        Region("tri", "polygon", ((0.1, 0.1), (0.9, 0.2), (0.5, 0.8)), normalized=True),
    )
    path = _write(tmp_path, [r.to_dict() for r in regions])
    assert read_regions(path) == regions


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"regions": []}, "non-empty list"),
        ({"shapes": []}, "expected .*'regions'"),
        ({"regions": [{"name": "a", "rect": [0, 0, 1, 1]}], "units": "cm"}, "units must be"),
        ([{"rect": [0, 0, 1, 1]}], "region 1: missing 'name'"),
        ([{"name": "a"}], "'a': needs exactly one of 'rect'"),
        ([{"name": "a", "rect": [0, 0, 1, 1], "polygon": [[0, 0]]}], "'a': needs exactly one"),
        ([{"name": "a", "rect": [0, 0, 1]}], "'a' rect: expected a list of 4 numbers"),
        ([{"name": "a", "rect": [0, 0, "1", 1]}], "'a' rect: expected numbers"),
        ([{"name": "a", "rect": [0, 0, True, 1]}], "'a' rect: expected numbers"),
        ([{"name": "a", "rect": [0, 0, 1, 1e999]}], "'a' rect: coordinates must be finite"),
        ([{"name": "a", "rect": [0, 0, 0, 1]}], "'a': width and height must be positive"),
        ([{"name": "a", "polygon": [[0, 0], [1, 1]]}], "'a': a polygon needs at least 3"),
        ([{"name": "a", "polygon": [[0, 0], [1, 1], [2]]}], "'a' polygon vertex 3"),
        ([{"name": "a", "polygon": [[0, 0], [1, 1], [2, 2]]}], "'a': the outline has zero area"),
        ([{"name": "a", "rect": [0, 0, 1, 1], "colour": "red"}], "'a': unknown keys"),
        (
            [{"name": "a", "rect": [0, 0, 1, 1]}, {"name": "a", "rect": [2, 2, 1, 1]}],
            "'a': duplicate name",
        ),
        ("[1, 2]", "region 1: expected an object"),
    ],
)
def test_read_regions_errors_name_file_and_region(tmp_path, content, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(RegionError, match=message) as info:
        read_regions(path)
    assert str(path) in str(info.value)


def test_read_regions_missing_file(tmp_path) -> None:
    with pytest.raises(RegionError, match="region file not found"):
        read_regions(tmp_path / "nope.json")


def test_check_regions_rejects_duplicates_and_nothing() -> None:
    with pytest.raises(RegionError, match="'x': duplicate name"):
        check_regions([parse_region("x:1,1,2,2"), parse_region("x:5,5,2,2")])
    with pytest.raises(RegionError, match="no regions"):
        check_regions([])


def test_concave_outlines_are_not_taken_for_crossing_ones() -> None:
    u_shape = ((0, 0), (3, 0), (3, 5), (7, 5), (7, 0), (10, 0), (10, 10), (0, 10))
    assert Region("u", "polygon", u_shape).area() == 80.0
    star = tuple(
        (10 + (9 if k % 2 == 0 else 4) * np.cos(k * np.pi / 5),
         10 + (9 if k % 2 == 0 else 4) * np.sin(k * np.pi / 5))
        for k in range(10)
    )  # fmt: skip
    assert Region("star", "polygon", star).mask((20, 20)).sum() > 50
    pentagram = tuple(star[k] for k in (0, 4, 8, 2, 6))  # the same tips joined across
    with pytest.raises(RegionError, match="crosses itself"):
        Region("pentagram", "polygon", pentagram)


def test_parse_regions_json_reads_what_a_region_file_holds(tmp_path) -> None:
    text = json.dumps(
        {"units": "fraction", "regions": [{"name": "a", "rect": [0.1, 0.2, 0.3, 0.4]}]}
    )
    (tmp_path / "r.json").write_text(text)
    assert parse_regions_json(text) == read_regions(tmp_path / "r.json")
    with pytest.raises(RegionError, match=r"^request regions: not valid JSON"):
        parse_regions_json("[" * 100_000, "request regions")  # nested past the recursion limit


def test_grid_regions_partition_any_image() -> None:
    grid = grid_regions()
    assert [r.name for r in grid][:3] == ["top-left", "top-center", "top-right"]
    for size in ((90, 120), (7, 11)):
        coverage = np.sum(region_masks(grid, size), axis=0)
        np.testing.assert_array_equal(coverage, np.ones(size))
