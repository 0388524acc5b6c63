"""EYEVIDO on the real files: counts, split, scale of the coordinates, order, malformed copies."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from salience.data import DataFormatError, load_dataset
from salience.data.eyevido import load_eyevido


def _raw(root: Path) -> list[dict[str, str]]:
    with (root / "fixations.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _site(page: str) -> str:
    return page.split("_")[1]


def test_counts_and_dropped(eyevido, eyevido_root: Path) -> None:
    raw = _raw(eyevido_root)
    # the README's counts
    assert len(eyevido) == 245 and len(raw) == 25304
    assert len({sp.observer for s in eyevido for sp in s.scanpaths}) == 24
    placeholders = [r for r in raw if r["duration_ms"] == "-1"]
    assert len(placeholders) == 36
    assert all(float(r["x"]) == float(r["y"]) == -0.5 for r in placeholders)
    assert eyevido.dropped_by_reason == {"placeholder": 36, "outside": 922 - 36}
    assert eyevido.dropped == 922
    assert sum(s.n_fixations for s in eyevido) == len(raw) - eyevido.dropped
    assert eyevido.kind == "eye" and eyevido.pixels_per_degree == 20.0
    assert load_dataset("eyevido", eyevido_root).dropped == 922  # registered for --dataset


def test_kept_fixations_are_inside_the_page_and_valid(eyevido) -> None:
    for s in eyevido:
        assert s.path.is_file() and s.width == 959 and 484 <= s.height <= 10324
        x, y = s.fixations()
        assert np.all((x >= 0) & (x < s.width) & (y >= 0) & (y < s.height)), s.id
        for sp in s.scanpaths:
            assert np.all(sp.duration >= 0) and np.all(sp.duration <= 0.8)
            assert np.all(np.diff(sp.onset) >= 0)


def test_scanpaths_follow_order_in_seconds(eyevido, eyevido_root: Path) -> None:
    """A viewing's rows, shuffled in the file, come back in ``order`` and converted to seconds."""
    stim = eyevido.by_id("s3_harvard_0")
    sp = stim.scanpaths[0]
    rows = [r for r in _raw(eyevido_root) if r["page"] == stim.id and r["user"] == sp.observer]
    rows.sort(key=lambda r: int(r["order"]))
    rows = [r for r in rows if r["duration_ms"] != "-1"]
    inside = [r for r in rows if 0 <= float(r["y"]) < stim.height and 0 <= float(r["x"]) < 959]
    np.testing.assert_array_equal(sp.x, [float(r["x"]) for r in inside])
    np.testing.assert_array_equal(sp.y, [float(r["y"]) for r in inside])
    np.testing.assert_allclose(sp.onset, [float(r["onset_ms"]) / 1000 for r in inside])
    np.testing.assert_allclose(sp.duration, [float(r["duration_ms"]) / 1000 for r in inside])


def test_split_is_by_site(eyevido) -> None:
    train, val = eyevido.splits["train"], eyevido.splits["val"]
    assert (len(train), len(val)) == (192, 53)
    assert sorted(train + val) == sorted(eyevido.ids)
    assert {_site(p) for p in val} == {"tesla", "harvard"}
    assert not {_site(p) for p in train} & {_site(p) for p in val}


def test_coordinates_are_in_the_halved_images(eyevido) -> None:
    """Fixations land on page content (local contrast) at the shipped scale, not at the source
    scale (x2) nor at a further halving (x0.5)."""
    contrast = {0.5: [], 1.0: [], 2.0: []}
    for stim in eyevido.stimuli[::6]:
        g = np.asarray(Image.open(stim.path).convert("L"), dtype=float)
        mean = ndimage.uniform_filter(g, 15)
        sd = np.sqrt(np.maximum(ndimage.uniform_filter(g * g, 15) - mean * mean, 0))
        x, y = stim.fixations()
        for scale, values in contrast.items():
            xs, ys = x * scale, y * scale
            ok = (xs < stim.width) & (ys < stim.height)
            values.append(sd[ys[ok].astype(int), xs[ok].astype(int)])
    mean = {k: np.concatenate(v).mean() for k, v in contrast.items()}
    assert mean[1.0] > 1.4 * max(mean[0.5], mean[2.0]), mean


@pytest.fixture
def copy(eyevido_root: Path, tmp_path: Path) -> Path:
    for name in ("pages.csv", "fixations.csv", "split.json"):
        shutil.copy(eyevido_root / name, tmp_path / name)
    (tmp_path / "images").symlink_to(eyevido_root / "images")
    return tmp_path


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def test_copy_reads_like_the_original(copy: Path, eyevido) -> None:
    assert load_eyevido(copy).dropped == eyevido.dropped


@pytest.mark.parametrize(
    "name, old, new, expected",
    [
        ("fixations.csv", "page,user,order", "page,observer,order", "header"),
        ("fixations.csv", "1,358.5,", "1,abc,", "x 'abc' is not a number"),
        ("fixations.csv", "s1_apple_0,1727693429,1,358.5,169.0,0,800", "s1_apple_0,1", "fields"),
        ("fixations.csv", "s1_apple_0,1727693429,1,", "s9_nowhere_0,1727693429,1,", "not in"),
        ("fixations.csv", "s1_apple_0,1727693429,2,", "s1_apple_0,1727693429,1,", "repeated order"),
        ("fixations.csv", "169.0,0,800", "169.0,0,-5", "negative"),
        ("pages.csv", ",959,1444,3,59", ",959,1444,3,60", "60"),  # one row missing
        ("pages.csv", ",959,1444,", ",959,1440,", "size"),
        ("split.json", '"s1_apple_0"', '"s1_pear_0"', "not in pages.csv"),
        ("split.json", "{", "[", "not valid JSON"),
    ],
)
def test_malformed_copy_names_the_file(copy: Path, name, old, new, expected) -> None:
    path = copy / name
    _edit(path, old, new)
    with pytest.raises(DataFormatError) as info:
        load_eyevido(copy)
    message = str(info.value)
    assert expected in message and str(path) in message, message


def test_missing_file_is_named(copy: Path) -> None:
    (copy / "fixations.csv").unlink()
    with pytest.raises(DataFormatError, match=r"fixations\.csv: file not found"):
        load_eyevido(copy)


def test_missing_image_is_named(copy: Path) -> None:
    (copy / "images").unlink()
    (copy / "images").mkdir()
    with pytest.raises(DataFormatError, match=r"s1_apple_0\.jpg: image file not found"):
        load_eyevido(copy)


def test_split_file_is_required(copy: Path) -> None:
    (copy / "split.json").unlink()
    with pytest.raises(DataFormatError, match=r"split\.json: file not found"):
        load_eyevido(copy)
