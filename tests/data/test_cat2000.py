"""CAT2000 reader: Stimuli/<Category>/<n>.jpg with FIXATIONLOCS/<Category>/<n>.mat (fixLocs)."""

import json

import numpy as np
import pytest
import scipy.io
from PIL import Image

from salience.data.cat2000 import CAT2000_PIXELS_PER_DEGREE, UNKNOWN_OBSERVER, load_cat2000
from salience.data.dataset import DataFormatError

HEIGHT, WIDTH = 6, 8


def _add(root, category, stem, fixated, size=(HEIGHT, WIDTH)):
    """Write an image and its fixLocs; ``fixated`` lists 1-based (row, col) like MATLAB."""
    image = root / "Stimuli" / category / f"{stem}.jpg"
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (WIDTH, HEIGHT), (10, 20, 30)).save(image)
    locs = np.zeros(size, dtype=bool)
    for r, c in fixated:
        locs[r - 1, c - 1] = True
    mat = root / "FIXATIONLOCS" / category / f"{stem}.mat"
    mat.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(mat, {"fixLocs": locs})
    return mat


@pytest.fixture
def root(tmp_path):
    _add(tmp_path, "Action", "001", [(2, 3), (6, 8), (1, 1)])
    _add(tmp_path, "Action", "010", [])
    _add(tmp_path, "Action", "2", [(4, 4)])
    _add(tmp_path, "Art", "001", [(3, 5)])
    return tmp_path


def test_reads_pooled_fixations_zero_based(root):
    ds = load_cat2000(root)
    assert ds.kind == "eye" and ds.dropped == 0
    assert ds.pixels_per_degree == CAT2000_PIXELS_PER_DEGREE == pytest.approx(38.2, abs=0.05)
    assert ds.ids == ["Action/001", "Action/2", "Action/010", "Art/001"]
    stim = ds.by_id("Action/001")
    assert stim.size == (HEIGHT, WIDTH)
    assert stim.path == root / "Stimuli" / "Action" / "001.jpg"
    (path,) = stim.scanpaths
    assert path.observer == UNKNOWN_OBSERVER
    # raster order: (1,1), (2,3), (6,8) as 1-based (row, col) -> x = col - 1, y = row - 1
    np.testing.assert_array_equal(path.x, [0, 2, 7])
    np.testing.assert_array_equal(path.y, [0, 1, 5])
    assert np.isnan(path.duration).all() and path.onset is None


def test_image_without_fixations_has_no_scanpath(root):
    ds = load_cat2000(root)
    assert ds.by_id("Action/010").scanpaths == ()
    assert len(ds.fixations()) == 5


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


def test_map_of_wrong_size_is_an_error(root):
    _add(root, "Art", "002", [(1, 1)], size=(HEIGHT + 1, WIDTH))
    assert "002.mat" in _error(root)


def test_nan_in_map_is_an_error(root):
    locs = np.zeros((HEIGHT, WIDTH))
    locs[0, 0] = np.nan
    scipy.io.savemat(root / "FIXATIONLOCS" / "Art" / "001.mat", {"fixLocs": locs})
    message = _error(root)
    assert "001.mat" in message and "NaN" in message


@pytest.mark.parametrize(
    "content",
    [
        {"fixations": np.zeros((HEIGHT, WIDTH))},
        {"fixLocs": np.zeros((2, 3, 4))},
        {"fixLocs": np.array(["ab", "cd"])},
    ],
)
def test_wrong_variable_is_an_error(root, content):
    scipy.io.savemat(root / "FIXATIONLOCS" / "Art" / "001.mat", content)
    assert "Art/001.mat" in _error(root)


def test_unparseable_mat_is_an_error(root):
    (root / "FIXATIONLOCS" / "Art" / "001.mat").write_bytes(b"not a MATLAB file" * 8)
    assert "Art/001.mat" in _error(root)


def test_missing_folder_is_an_error(tmp_path):
    assert "FIXATIONLOCS" in _error(tmp_path)
