"""CAT2000 reader: Stimuli/<Category>/<n>.jpg with per-observer fixations in allFixData.mat.

The fixture writes ``allFixData.mat`` as MATLAB does (a ``containers.Map`` of cells of structs)
with mat-io, the library the reader uses; the layout follows pysaliency's unpacking script."""

import json

import numpy as np
import pytest
from matio import save_to_mat
from matio.utils import MatlabContainerMap
from PIL import Image

from salience.data import load_dataset
from salience.data.cat2000 import CAT2000_PIXELS_PER_DEGREE, load_cat2000
from salience.data.dataset import DataFormatError
from salience.models.baselines import fit_references

HEIGHT, WIDTH = 6, 8


def _cell(recordings: dict[str, list[tuple[float, ...]]]) -> np.ndarray:
    """A MATLAB n x 1 cell of 1x1 structs with 'name' and 'data' (1-based x, y, ...)."""
    cell = np.empty((len(recordings), 1), dtype=object)
    for i, (name, rows) in enumerate(recordings.items()):
        record = np.empty((1, 1), dtype=[("name", object), ("data", object)])
        record[0, 0]["name"] = name
        record[0, 0]["data"] = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        cell[i, 0] = record
    return cell


def _write(root, entries, images=None):
    for key in images if images is not None else entries:
        path = root / "Stimuli" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (WIDTH, HEIGHT), (10, 20, 30)).save(path)
    data = MatlabContainerMap({key: _cell(value) for key, value in entries.items()})
    save_to_mat(root / "allFixData.mat", {"allData": data}, version="v7")


ENTRIES = {
    "Action/001.jpg": {
        "1-1-ab.eye": [(3, 2, 7), (3, 2, 7), (8, 6, 9), (9, 1, 1)],  # a repeat, then off-image
        "1-2-cd.eye": [(1, 1, 5)],
    },
    "Action/010.jpg": {"1-3-ab.eye": [(2, 2, 1), (4, 5, 1)]},
    "Action/2.jpg": {"1-4-ab.eye": [(4, 4, 1)], "1-5-ef.eye": [(np.nan, 1, 1)]},
    "Art/001.jpg": {"2-1-cd.eye": [(5, 3, 1)], "2-2-ab.eye": [(6, 3, 2)]},
}


@pytest.fixture
def root(tmp_path):
    _write(tmp_path, ENTRIES)
    return tmp_path


def test_reads_each_observer_zero_based_in_order(root):
    ds = load_cat2000(root)
    assert ds.kind == "eye" and ds.dropped == 2  # (9, 1) is past the right edge; one NaN
    assert ds.pixels_per_degree == CAT2000_PIXELS_PER_DEGREE == pytest.approx(38.2, abs=0.05)
    assert ds.ids == ["Action/001", "Action/2", "Action/010", "Art/001"]
    stim = ds.by_id("Action/001")
    assert stim.size == (HEIGHT, WIDTH)
    assert stim.path == root / "Stimuli" / "Action" / "001.jpg"
    ab, cd = stim.scanpaths
    assert (ab.observer, cd.observer) == ("ab", "cd")
    # 1-based (3, 2), its repeat removed, then (8, 6) -> 0-based (2, 1), (7, 5)
    np.testing.assert_array_equal(ab.x, [2, 7])
    np.testing.assert_array_equal(ab.y, [1, 5])
    assert np.isnan(ab.duration).all() and ab.onset is None
    # an observer with no fixation left has no scanpath
    assert [s.observer for s in ds.by_id("Action/2").scanpaths] == ["ab"]


def test_observers_are_separate_so_the_gold_standard_tunes(root):
    ds = load_dataset("cat2000", root)
    _, gold, gain = fit_references(ds, ds, ds)
    assert gold.tuned and gain is not None and np.isfinite(gain)


def test_split_json(root):
    (root / "split.json").write_text(json.dumps({"val": ["Art/001", "Action/2"]}))
    assert load_cat2000(root).split("val").ids == ["Art/001", "Action/2"]


def _error(root):
    with pytest.raises(DataFormatError) as info:
        load_cat2000(root)
    return str(info.value)


def test_missing_image_is_an_error(root):
    (root / "Stimuli" / "Art" / "001.jpg").unlink()
    message = _error(root)
    assert "Art/001.jpg" in message and "not found" in message


def test_missing_fixation_file_is_an_error(tmp_path):
    message = _error(tmp_path)
    assert "allFixData.mat" in message and "not found" in message


def test_unparseable_mat_is_an_error(root):
    (root / "allFixData.mat").write_bytes(b"not a MATLAB file" * 8)
    assert "allFixData.mat" in _error(root)


def test_wrong_variable_is_an_error(root):
    save_to_mat(root / "allFixData.mat", {"fixations": np.zeros((2, 2))}, version="v7")
    message = _error(root)
    assert "allFixData.mat" in message and "allData" in message


def test_data_without_two_columns_is_an_error(tmp_path):
    _write(tmp_path, {"Art/001.jpg": {}})
    record = np.empty((1, 1), dtype=[("name", object), ("data", object)])
    record[0, 0]["name"], record[0, 0]["data"] = "1-1-ab.eye", np.zeros((3, 1))
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = record
    data = MatlabContainerMap({"Art/001.jpg": cell})
    save_to_mat(tmp_path / "allFixData.mat", {"allData": data}, version="v7")
    message = _error(tmp_path)
    assert "Art/001.jpg" in message and "1-1-ab.eye" in message and "shape" in message
