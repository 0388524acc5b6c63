"""Rendering densities for people: the display convention, the pictures, and clear refusals."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from salience.analysis.render import (
    _label_spots,
    colormap_table,
    difference_map,
    display_map,
    gaze_plot,
    heatmap,
    overlay,
    png_bytes,
    save_png,
    side_by_side,
)


def _density(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).gamma(0.5, size=(height, width))
    return d / d.sum()


def _image(height: int = 24, width: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _rgb(name: str, value: float) -> np.ndarray:
    return np.asarray(matplotlib.colormaps[name](value, bytes=True)[:3])


def test_display_map_is_the_share_of_mass_below_with_ties_halved() -> None:
    d = np.array([[0.0, 1.0], [1.0, 2.0]]) / 4  # levels 0, 1/4 (half the mass), 1/2 (the rest)
    np.testing.assert_allclose(display_map(d), [[0.0, 0.25], [0.25, 0.75]])


def test_display_map_is_monotone_bounded_and_scale_free() -> None:
    d = _density()
    d[0, :5] = 0  # zero-density pixels
    v = display_map(d)
    assert v.shape == d.shape and v.dtype == np.float64
    assert v.min() >= 0 and v.max() <= 1
    order = np.argsort(d, axis=None)
    d_sorted, v_sorted = d.ravel()[order], v.ravel()[order]
    rises = np.diff(d_sorted) > 0
    assert (np.diff(v_sorted)[rises] > 0).all()  # denser is strictly brighter
    assert (np.diff(v_sorted)[~rises] == 0).all()  # equal density, equal value
    assert (v[0, :5] == 0).all()
    np.testing.assert_allclose(display_map(7 * d), v)
    # the pixels above 1 - x hold about the share x of the mass: the "top x %" reading
    for share in (0.25, 0.5, 0.9):
        assert abs(d[v > 1 - share].sum() - share) < 0.05


def test_constant_density_gives_a_uniform_map() -> None:
    v = display_map(np.full((5, 6), 1 / 30))
    assert not np.isnan(v).any()
    np.testing.assert_array_equal(v, 0.5)
    picture = heatmap(np.full((5, 6), 1 / 30))
    assert (picture == picture[0, 0]).all()


@pytest.mark.parametrize(
    ("density", "message"),
    [
        (np.zeros((4, 4)), "all zero"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.array([[0.5, np.inf], [0.5, 0.0]]), "NaN or infinity"),
        (np.array([[0.6, -0.1], [0.5, 0.0]]), "negative"),
        (np.ones(4) / 4, r"\(H, W\)"),
    ],
)
def test_bad_densities_are_refused_clearly(density: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        display_map(density)


def test_heatmap_is_uint8_rgb_in_the_colormap() -> None:
    d = _density()
    picture = heatmap(d, colormap="viridis")
    assert picture.shape == (*d.shape, 3) and picture.dtype == np.uint8
    peak = np.unravel_index(np.argmax(d), d.shape)
    np.testing.assert_array_equal(picture[peak], _rgb("viridis", display_map(d)[peak]))


def test_overlay_blends_by_attention() -> None:
    image, d = _image(), _density()
    d[3:6, 4:9] = 0
    np.testing.assert_array_equal(overlay(image, d, opacity=0.0), image)
    blended = overlay(image, d, opacity=1.0)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    np.testing.assert_array_equal(blended[3:6, 4:9], image[3:6, 4:9])  # no attention: untouched
    peak = np.unravel_index(np.argmax(d), d.shape)
    v = display_map(d)[peak]
    expected = np.round(image[peak] * (1 - v) + _rgb("jet", v) * v)
    np.testing.assert_array_equal(blended[peak], expected)


def test_overlay_refuses_bad_arguments() -> None:
    image, d = _image(), _density()
    for opacity in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"opacity must be in \[0, 1\]"):
            overlay(image, d, opacity=opacity)
    with pytest.raises(ValueError, match=r"image is 24x32 .* density is 12x32"):
        overlay(image, d[:12] / d[:12].sum())
    with pytest.raises(ValueError, match=r"unknown colormap 'jett'; did you mean jet.*inferno"):
        overlay(image, d, colormap="jett")
    with pytest.raises(ValueError, match="unknown colormap 'no-such-map'; valid names include"):
        heatmap(d, colormap="no-such-map")


def test_difference_map_is_centred_and_symmetric() -> None:
    a, b = _density(seed=2), _density(seed=3)
    same = difference_map(a, a.copy())
    assert same.shape == (*a.shape, 3) and same.dtype == np.uint8
    assert (same == _rgb("RdBu_r", 0.5)).all()
    forward, backward = difference_map(a, b), difference_map(b, a)
    # b - a and a - b use the same scale in mirrored colours: the largest |difference| hits
    # the two ends of the colormap
    worst = np.unravel_index(np.argmax(np.abs(b - a)), a.shape)
    ends = {tuple(_rgb("RdBu_r", 0.0)), tuple(_rgb("RdBu_r", 1.0))}
    assert {tuple(forward[worst]), tuple(backward[worst])} == ends
    # a shared limit puts several maps on one scale; beyond it colours saturate
    np.testing.assert_array_equal(difference_map(a, b, limit=1.0), difference_map(a, b, limit=1.0))
    assert (difference_map(a, b, limit=1e-12) != same).any()
    with pytest.raises(ValueError, match="differ in shape"):
        difference_map(a, b[:10])
    with pytest.raises(ValueError, match="limit must be a positive number"):
        difference_map(a, b, limit=0.0)


def test_side_by_side_places_panels_of_different_heights() -> None:
    small, tall = _image(10, 12), _image(20, 40, seed=5)
    row = side_by_side([small, tall], gap=3)
    assert row.shape == (20, 12 + 3 + 40, 3) and row.dtype == np.uint8
    np.testing.assert_array_equal(row[:10, :12], small)
    np.testing.assert_array_equal(row[:, 15:], tall)
    assert (row[10:, :12] == 255).all() and (row[:, 12:15] == 255).all()  # white fill and gap

    labelled = side_by_side([small, tall], gap=3, labels=["a wide label here", "b"])
    strip = labelled.shape[0] - 20
    assert strip > 0 and labelled.shape[1] > row.shape[1]  # the long label widened its slot
    assert (labelled[:strip] < 128).any()  # some dark text in the label strip
    np.testing.assert_array_equal(labelled[strip:, -40:], tall)  # "b" fits its panel


def test_side_by_side_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one"):
        side_by_side([])
    with pytest.raises(ValueError, match="gap"):
        side_by_side([_image()], gap=-1)
    with pytest.raises(ValueError, match="2 labels for 1 images"):
        side_by_side([_image()], labels=["a", "b"])


def test_gaze_plot_marks_fixations_and_grows_with_duration() -> None:
    gray = np.full((80, 160, 3), 128, dtype=np.uint8)
    points = np.array([[40.0, 40.0], [120.0, 40.0]])
    plot = gaze_plot(gray, points, durations=np.array([0.8, 0.05]))
    assert plot.shape == gray.shape and plot.dtype == np.uint8
    changed = (plot != gray).any(axis=2)
    assert changed[40, 40] and changed[40, 120]
    assert changed[:, :80].sum() > 1.5 * changed[:, 80:].sum()  # the long fixation is bigger
    assert changed[40, 60:100].all()  # the line joining them
    assert not changed[5:15, 5:15].any()  # far from fixations the image is untouched

    equal = (gaze_plot(gray, points) != gray).any(axis=2)
    left, right = equal[:, :80].sum(), equal[:, 80:].sum()
    assert abs(left - right) < 0.05 * left  # no durations: equal circles (numbers differ)
    np.testing.assert_array_equal(gaze_plot(gray, np.empty((0, 2))), gray)


def test_gaze_plot_labels_of_refixations_do_not_overlap() -> None:
    centres, sizes = [(50.0, 50.0)] * 4 + [(2.0, 2.0)], [(10.0, 12.0)] * 5
    spots = _label_spots(centres, sizes, (100.0, 100.0))
    assert spots[0] == (50.0, 50.0)  # the first label sits on its point
    for i, (x, y) in enumerate(spots):
        assert 5 <= x <= 95 and 6 <= y <= 94  # inside the picture
        for px, py in spots[:i]:
            assert abs(x - px) >= 10 or abs(y - py) >= 12
        assert np.hypot(x - centres[i][0], y - centres[i][1]) <= 3 * 12 + 1e-9
    gray = np.full((60, 80, 3), 128, dtype=np.uint8)
    plot = gaze_plot(gray, np.array([[40.0, 30.0]] * 3), durations=np.array([0.2, 0.3, 0.1]))
    assert (plot != gray).any(axis=2)[30, 40]


def test_gaze_plot_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\(k, 2\)"):
        gaze_plot(_image(), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        gaze_plot(_image(), np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="one per point"):
        gaze_plot(_image(), np.array([[1.0, 2.0]]), durations=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=">= 0"):
        gaze_plot(_image(), np.array([[1.0, 2.0]]), durations=np.array([-0.1]))


def test_save_png_round_trips_atomically(tmp_path: Path) -> None:
    picture = heatmap(_density())
    path = tmp_path / "new" / "dir" / "map.png"
    save_png(path, picture)
    with Image.open(path) as im:
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im), picture)
    assert [p.name for p in path.parent.iterdir()] == ["map.png"]  # no temp file left

    with pytest.raises(ValueError, match="uint8"):
        save_png(path, picture.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        save_png(path, picture[:, :, :2])
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), picture)  # the old file survives


def test_an_interrupted_save_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = Path.write_bytes

    def fail(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", fail)
    with pytest.raises(OSError, match="disk full"):
        save_png(tmp_path / "map.png", heatmap(_density()))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (37, 53, 4)])
@pytest.mark.parametrize("level", [0, 2, 9])
def test_png_bytes_decode_to_the_same_pixels(shape: tuple[int, ...], level: int) -> None:
    pixels = np.random.default_rng(level).integers(0, 256, shape, dtype=np.uint8)
    pixels[:, 10:] = pixels[:, :1]  # runs compress, noise does not: both kinds of rows
    encoded = png_bytes(pixels[:, ::-1], level)  # a strided view is fine
    with Image.open(io.BytesIO(encoded)) as im:
        assert im.format == "PNG"
        assert im.mode == ("L" if len(shape) == 2 else {3: "RGB", 4: "RGBA"}[shape[2]])
        np.testing.assert_array_equal(np.asarray(im), pixels[:, ::-1])
    with pytest.raises(ValueError, match="compress_level"):
        png_bytes(pixels, 10)


def test_colormap_table_holds_the_colours_heatmap_paints() -> None:
    table = colormap_table("viridis")
    assert table.shape == (256, 3) and table.dtype == np.uint8
    levels = np.linspace(0.0, 1.0, 256)[None, :]  # display values a browser receives as 8 bits
    np.testing.assert_array_equal(heatmap(_density(1, 256), "viridis", display=levels)[0], table)
    with pytest.raises(ValueError, match="unknown colormap"):
        colormap_table("no-such-map")


def _smooth_density(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A map like a model's: a few Gaussian bumps on a floor, bilinearly smooth."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    d = np.full(shape, 1e-3)
    for _ in range(4):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        d += rng.uniform(0.2, 1) * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / 800)
    return d / d.sum()


@pytest.mark.parametrize(
    "density",
    [
        _smooth_density((300, 400), 0),
        _smooth_density((120, 90), 1),
        np.random.default_rng(2).random((200, 300)) ** 30,  # peaked, many tiny values
        np.pad(np.ones((20, 20)), 40),  # zeros and one plateau: every value tied
        np.repeat(np.arange(8.0), 500).reshape(40, 100),  # few levels, heavy buckets
        np.where(np.random.default_rng(3).random((100, 100)) < 0.5, 1.0, 1.0 + 1e-9),
    ],
)
def test_binned_display_map_is_the_exact_one_to_display_precision(density) -> None:
    from salience.analysis.render import DISPLAY_TOLERANCE

    exact, binned = display_map(density, exact=True), display_map(density)
    assert np.abs(binned - exact).max() <= DISPLAY_TOLERANCE
    # as colours: the same 256-level colour except where the exact share sits by a level's edge
    near_edge = np.abs(exact * 256 - np.round(exact * 256)) < 256 * DISPLAY_TOLERANCE
    differs = (heatmap(density, display=binned) != heatmap(density, display=exact)).any(-1)
    assert not (differs & ~near_edge).any()


def test_colormap_lookup_is_matplotlibs() -> None:
    values = np.concatenate([np.linspace(0, 1, 1001), [1 / 256, 255 / 256, 1 - 1e-17]])
    for name in ("jet", "inferno", "RdBu_r"):
        theirs = matplotlib.colormaps[name](values, bytes=True)[:, :3]
        np.testing.assert_array_equal(heatmap(np.ones((1, 1)), name, values[None])[0], theirs)
