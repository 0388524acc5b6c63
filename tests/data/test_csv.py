"""CSV reader: image,observer,x,y[,onset,duration] with 0-based pixels and seconds."""

import json

import numpy as np
import pytest
from PIL import Image

from salience.data.csv import load_csv
from salience.data.dataset import DataFormatError

WIDTH, HEIGHT = 40, 30


@pytest.fixture
def root(tmp_path):
    for name in ("street/001.jpg", "beach.png"):
        path = tmp_path / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (WIDTH, HEIGHT)).save(path)
    return tmp_path


def _write(root, text, name="fixations.csv"):
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


FULL = """image,observer,x,y,onset,duration
street/001.jpg,s01,12.5,7.25,0.000,0.250
beach.png,007,0,0,,
street/001.jpg,s02,39.9,29.9,0.0,0.3
street/001.jpg,s01,3,4,0.28,0.18
street/001.jpg,s01,40,5,0.5,0.1
street/001.jpg,s03,-1,2,0,0.2
"""


def test_reads_rows_into_scanpaths(root):
    _write(root, FULL)
    ds = load_csv(root, pixels_per_degree=30.0)
    assert ds.name == "fixations" and ds.root == root and ds.kind == "eye"
    assert ds.pixels_per_degree == 30.0
    assert ds.ids == ["street/001.jpg", "beach.png"]
    street = ds.by_id("street/001.jpg")
    assert street.size == (HEIGHT, WIDTH) and street.path == root / "images" / "street/001.jpg"
    s01, s02 = street.scanpaths  # s03's only fixation is off the image
    assert (s01.observer, s02.observer) == ("s01", "s02")
    np.testing.assert_array_equal(s01.x, [12.5, 3])
    np.testing.assert_array_equal(s01.y, [7.25, 4])
    np.testing.assert_array_equal(s01.onset, [0.0, 0.28])
    np.testing.assert_array_equal(s01.duration, [0.25, 0.18])
    assert ds.dropped == 2  # x = 40 is at the right edge, x = -1 left of it
    (beach,) = ds.by_id("beach.png").scanpaths
    assert beach.observer == "007"
    assert np.isnan(beach.onset).all() and np.isnan(beach.duration).all()


def test_optional_columns_may_be_absent_and_in_any_order(root):
    path = _write(root, "y,x,observer,image\n5,6,a,beach.png\n", name="gaze.csv")
    ds = load_csv(path, pixels_per_degree=20.0, kind="mouse", name="mine")
    assert (ds.name, ds.kind) == ("mine", "mouse")
    (scanpath,) = ds[0].scanpaths
    assert scanpath.onset is None and np.isnan(scanpath.duration).all()
    assert (scanpath.x[0], scanpath.y[0]) == (6.0, 5.0)


def test_images_folder_and_split_json(tmp_path):
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "a.jpg")
    data = tmp_path / "data"
    data.mkdir()
    _write(data, "\ufeffimage,observer,x,y,duration\na.jpg,1,1,1,0.2\n")
    (data / "split.json").write_text(json.dumps({"train": ["a.jpg"]}))
    ds = load_csv(data, images=tmp_path, pixels_per_degree=25.0)
    assert ds.split("train").ids == ["a.jpg"]
    assert ds[0].scanpaths[0].onset is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("image,observer,x\nbeach.png,a,1\n", "header"),  # missing column
        ("image,observer,x,y,durations\nbeach.png,a,1,1,2\n", "header"),  # unknown column
        ("image,observer,x,y,x\nbeach.png,a,1,1,1\n", "header"),  # repeated column
        ("", "empty file"),
        ("image,observer,x,y\nbeach.png,a,nan,1\n", "line 2: x is NaN"),
        ("image,observer,x,y\nbeach.png,a,1,\n", "line 2: y '' is not a number"),
        ("image,observer,x,y\nbeach.png,a,1,1\nbeach.png,a,1,two\n", "line 3"),
        ("image,observer,x,y\nbeach.png,a,1,inf\n", "infinite"),
        ("image,observer,x,y\nbeach.png,a,1\n", "3 fields"),
        ("image,observer,x,y,duration\nbeach.png,a,1,1,-0.1\n", "negative duration"),
        ("image,observer,x,y\n,a,1,1\n", "empty image"),
        ("image,observer,x,y\nmissing.jpg,a,1,1\n", "missing.jpg: image file not found"),
        ('image,observer,x,y\n"beach.png,a,1,1\n', "fields"),
    ],
)
def test_malformed_input_names_the_file(root, text, expected):
    path = _write(root, text)
    with pytest.raises(DataFormatError) as info:
        load_csv(root, pixels_per_degree=30.0)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_unreadable_files_are_errors(root):
    with pytest.raises(DataFormatError, match="not found"):
        load_csv(root / "none.csv", pixels_per_degree=30.0)
    (root / "fixations.csv").write_bytes(b"image,observer,x,y\n\xff\xfe,a,1,1\n")
    with pytest.raises(DataFormatError, match=r"fixations\.csv"):
        load_csv(root, pixels_per_degree=30.0)
    _write(root, "image,observer,x,y\nbad.jpg,a,1,1\n")
    (root / "images" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match=r"bad\.jpg: not a readable image"):
        load_csv(root, pixels_per_degree=30.0)


def test_bad_arguments_are_value_errors(root):
    with pytest.raises(ValueError, match="kind"):
        load_csv(root, pixels_per_degree=30.0, kind="head")
    with pytest.raises(ValueError, match="pixels_per_degree"):
        load_csv(root, pixels_per_degree=0.0)
