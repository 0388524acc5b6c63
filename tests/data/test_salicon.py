"""SALICON reader: COCO-style JSON with 1-based [row, col] mouse points."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from salience.data.dataset import DataFormatError
from salience.data.salicon import SALICON_PIXELS_PER_DEGREE, load_salicon

WIDTH, HEIGHT = 64, 48


def _image(path, size=(WIDTH, HEIGHT)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 30)).save(path)


def _write(root, images, annotations, name="fixations_train2014.json"):
    doc = {
        "info": {"description": "test", "version": "1.0", "year": 2014},
        "type": "fixations",
        "images": images,
        "annotations": annotations,
        "licenses": [],
    }
    (root / name).write_text(json.dumps(doc))


def _meta(image_id, file_name):
    return {
        "id": image_id,
        "file_name": file_name,
        "height": HEIGHT,
        "width": WIDTH,
        "license": 1,
        "url": "",
    }


@pytest.fixture
def root(tmp_path):
    for stem in ("COCO_train2014_000000000001", "COCO_train2014_000000000002"):
        _image(tmp_path / "images" / "train" / f"{stem}.jpg")
    return tmp_path


def _valid(root):
    _write(
        root,
        [_meta(1, "COCO_train2014_000000000001.jpg"), _meta(2, "COCO_train2014_000000000002.jpg")],
        [
            # (row, col) 1-based; the last two are outside: row 0, col 65 > width 64
            {
                "id": 1,
                "image_id": 1,
                "worker_id": 307,
                "fixations": [[10, 20], [48, 64], [1, 1], [0, 5], [12, 65]],
            },
            {"id": 2, "image_id": 1, "worker_id": 444, "fixations": [[5.5, 7.25]]},
            {"id": 3, "image_id": 2, "worker_id": 307, "fixations": []},
            {"id": 4, "image_id": 2, "worker_id": 9, "fixations": [[0, 0]]},
        ],
    )


def test_reads_points_as_zero_based_x_col_y_row(root):
    _valid(root)
    ds = load_salicon(root)
    assert ds.kind == "mouse"
    assert ds.pixels_per_degree == SALICON_PIXELS_PER_DEGREE == pytest.approx(19.2)
    assert ds.ids == ["COCO_train2014_000000000001", "COCO_train2014_000000000002"]
    first = ds.by_id("COCO_train2014_000000000001")
    assert first.size == (HEIGHT, WIDTH)
    assert first.path == root / "images" / "train" / "COCO_train2014_000000000001.jpg"
    a, b = first.scanpaths
    assert a.observer == "307" and b.observer == "444"
    np.testing.assert_array_equal(a.x, [19, 63, 0])
    np.testing.assert_array_equal(a.y, [9, 47, 0])
    np.testing.assert_array_equal(b.x, [6.25])
    np.testing.assert_array_equal(b.y, [4.5])
    assert a.onset is None and np.isnan(a.duration).all()


def test_counts_dropped_and_omits_empty_scanpaths(root):
    _valid(root)
    ds = load_salicon(root)
    assert ds.dropped == 3  # two from worker 307 on image 1, the only point of worker 9
    assert ds.by_id("COCO_train2014_000000000002").scanpaths == ()
    assert ds.fixations().x.size == 4


def test_other_annotation_file_and_image_folder(tmp_path):
    _image(tmp_path / "val" / "COCO_val2014_000000000005.jpg")
    _write(
        tmp_path,
        [_meta(5, "COCO_val2014_000000000005.jpg")],
        [{"image_id": 5, "worker_id": "w1", "fixations": [[2, 3]]}],
        name="fixations_val2014.json",
    )
    ds = load_salicon(tmp_path, annotations="fixations_val2014.json", images="val", name="v")
    assert ds.name == "v"
    assert ds[0].scanpaths[0].observer == "w1"
    assert (ds[0].scanpaths[0].x[0], ds[0].scanpaths[0].y[0]) == (2.0, 1.0)


def test_split_json(root):
    _valid(root)
    (root / "split.json").write_text(json.dumps({"train": ["COCO_train2014_000000000001"]}))
    ds = load_salicon(root)
    assert ds.split("train").ids == ["COCO_train2014_000000000001"]


def _error(root):
    with pytest.raises(DataFormatError) as info:
        load_salicon(root)
    return str(info.value)


def test_unknown_image_id_is_an_error(root):
    _write(
        root,
        [_meta(1, "COCO_train2014_000000000001.jpg")],
        [{"image_id": 77, "worker_id": 1, "fixations": [[1, 1]]}],
    )
    message = _error(root)
    assert "fixations_train2014.json" in message and "77" in message


def test_missing_image_file_is_an_error(root):
    _write(root, [_meta(3, "COCO_train2014_000000000003.jpg")], [])
    message = _error(root)
    assert "COCO_train2014_000000000003.jpg" in message and "not found" in message


def test_nan_point_is_an_error(root):
    _write(
        root,
        [_meta(1, "COCO_train2014_000000000001.jpg")],
        [{"image_id": 1, "worker_id": 1, "fixations": [[1, math.nan]]}],
    )
    assert "NaN" in _error(root)


@pytest.mark.parametrize("points", [[[1, 2, 3]], [[1]], [["a", 2]], [1, 2], "x"])
def test_points_not_row_col_pairs_are_an_error(root, points):
    _write(
        root,
        [_meta(1, "COCO_train2014_000000000001.jpg")],
        [{"image_id": 1, "worker_id": 1, "fixations": points}],
    )
    assert "annotations[0]" in _error(root)


@pytest.mark.parametrize(
    "images, annotations",
    [
        ([{"id": 1, "file_name": "COCO_train2014_000000000001.jpg"}], []),  # no height/width
        ([{**_meta(1, "COCO_train2014_000000000001.jpg"), "height": 0}], []),
        ([_meta(1, "COCO_train2014_000000000001.jpg")] * 2, []),  # repeated id
        ([_meta([1], "COCO_train2014_000000000001.jpg")], []),  # unhashable id
        ([_meta(1, "COCO_train2014_000000000001.jpg")], [{"image_id": 1, "fixations": []}]),
    ],
)
def test_malformed_entries_are_errors(root, images, annotations):
    _write(root, images, annotations)
    assert "fixations_train2014.json" in _error(root)


@pytest.mark.parametrize("text", ["{not json", "[]", '{"images": []}', ""])
def test_unparseable_or_wrong_json_is_an_error(root, text):
    (root / "fixations_train2014.json").write_text(text)
    assert "fixations_train2014.json" in _error(root)


def test_missing_annotation_file_is_an_error(tmp_path):
    assert "not found" in _error(tmp_path)
