"""OSIE eye and mouse loaders on the real data, and the generic OSIE layout on written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from salience.data import DataFormatError, load_dataset
from salience.data.osie import load_osie, load_osie_mouse


def test_osie_counts_and_conventions(osie, osie_root: Path) -> None:
    assert len(osie) == 600
    assert {len(osie.splits["train"]), len(osie.splits["val"])} == {500, 100}
    assert all(s.size == (600, 800) for s in osie)
    n_fix = sum(s.n_fixations for s in osie)
    assert n_fix == 84254 - osie.dropped
    # 1-based MATLAB pixels become 0-based: compare with the raw file
    raw = scipy.io.loadmat(
        osie_root / "eye" / "fixations.mat", squeeze_me=True, struct_as_record=False
    )["fixations"]
    first = raw[0].subjects[0]
    sp = osie[0].scanpaths[0]
    np.testing.assert_allclose(sp.x, np.atleast_1d(first.fix_x) - 1)
    np.testing.assert_allclose(sp.y, np.atleast_1d(first.fix_y) - 1)
    np.testing.assert_allclose(sp.duration, np.atleast_1d(first.fix_duration) / 1000)
    assert osie[0].id == "1002" and osie[0].path.name == "1002.jpg"


def _agreement(mouse, eye, swap: bool) -> float:
    """Mean over images of the correlation of coarse mouse and eye position histograms."""
    corrs = []
    for m_stim in mouse.stimuli[:60]:
        e_stim = eye.by_id(m_stim.id)
        mx, my = m_stim.fixations()
        if swap:  # the other reading of coord: column 0 as x
            mx, my = my, mx
        ex, ey = e_stim.fixations()
        bins = [np.linspace(0, 800, 17), np.linspace(0, 600, 13)]
        hm, _, _ = np.histogram2d(mx, my, bins=bins)
        he, _, _ = np.histogram2d(ex, ey, bins=bins)
        corrs.append(np.corrcoef(hm.ravel(), he.ravel())[0, 1])
    return float(np.mean(corrs))


@pytest.mark.parametrize("collection", ["mouse_lab", "mouse_amt"])
def test_mouse_coord_is_row_column(osie, osie_root: Path, collection: str) -> None:
    mouse = load_osie_mouse(osie_root, collection)
    assert mouse.kind == "mouse" and len(mouse) == 600
    # Read as (row, column), mouse positions agree with eye fixations on the same image far
    # better than the transposed reading does.
    right, swapped = _agreement(mouse, osie, swap=False), _agreement(mouse, osie, swap=True)
    assert right > 0.5 and right > swapped + 0.2, (right, swapped)
    # and the raw column maxima are (height, width), not (width, height)
    raw = scipy.io.loadmat(
        osie_root / collection / "1002.mat", squeeze_me=True, struct_as_record=False
    )["fixations"]
    assert raw.coord[:, 1].max() > 600 >= raw.coord[:, 0].max()
    # scanpaths follow the recorded order
    sp = mouse.by_id("1002").scanpaths[0]
    sel = raw.subj == int(sp.observer)
    order = np.argsort(raw.order[sel], kind="stable")
    np.testing.assert_allclose(sp.x[:5], raw.coord[sel][order][:5, 1] - 1)


def _write_osie_layout(root: Path, sizes: list[tuple[int, int]], subjects: list[list[dict]]):
    (root / "stimuli").mkdir(parents=True)
    (root / "eye").mkdir()
    entries = np.empty((len(sizes), 1), dtype=object)
    for i, ((h, w), subs) in enumerate(zip(sizes, subjects, strict=True)):
        Image.new("RGB", (w, h), (i * 40 % 255, 80, 120)).save(root / "stimuli" / f"img{i}.jpg")
        cell = np.empty((len(subs), 1), dtype=object)
        for j, sub in enumerate(subs):
            cell[j, 0] = sub
        entries[i, 0] = {"img": f"img{i}.jpg", "subjects": cell}
    scipy.io.savemat(root / "eye" / "fixations.mat", {"fixations": entries})


def test_any_osie_layout_folder(tmp_path: Path) -> None:
    """Another NUS dataset in the same layout: other image count and sizes, edge cases."""
    subjects = [
        [
            {
                "fix_x": np.array([[10.0, 50.0, 640.0, 30.0]]),
                "fix_y": np.array([[5.0, 20.0, 3.0, 481.0]]),
                "fix_duration": np.array([[100, 200, 300, 50]], dtype=np.uint16),
            },
            {
                "fix_x": np.array([[0.2]]),
                "fix_y": np.array([[7.0]]),  # x < 1: left of the image
                "fix_duration": np.array([[120]], dtype=np.uint16),
            },
        ],
        [
            {
                "fix_x": np.array([[100.0]]),
                "fix_y": np.array([[300.0]]),
                "fix_duration": np.array([[90]], dtype=np.uint16),
            }
        ],
    ]
    _write_osie_layout(tmp_path, [(480, 640), (300, 200)], subjects)
    data = load_dataset("osie", tmp_path)
    assert [s.size for s in data] == [(480, 640), (300, 200)]
    # 1-based x = 640 is the last column (639) and stays; y = 481 and x = 0.2 fall outside
    assert data.dropped == 2
    first = data[0]
    assert len(first.scanpaths) == 1  # the observer with only an outside fixation is gone
    np.testing.assert_allclose(first.scanpaths[0].x, [9.0, 49.0, 639.0])
    np.testing.assert_allclose(first.scanpaths[0].y, [4.0, 19.0, 2.0])
    np.testing.assert_allclose(first.scanpaths[0].duration, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(data[1].fixations(), ([99.0], [299.0]))
    assert data.splits == {}


def test_osie_layout_errors_name_the_file(tmp_path: Path) -> None:
    good = [
        [
            {
                "fix_x": np.array([[10.0]]),
                "fix_y": np.array([[5.0]]),
                "fix_duration": np.array([[100]], dtype=np.uint16),
            }
        ]
    ]
    _write_osie_layout(tmp_path / "a", [(40, 60)], good)
    (tmp_path / "a" / "stimuli" / "img0.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"img0\.jpg"):
        load_osie(tmp_path / "a")

    nan = [
        [
            {
                "fix_x": np.array([[np.nan]]),
                "fix_y": np.array([[5.0]]),
                "fix_duration": np.array([[100]], dtype=np.uint16),
            }
        ]
    ]
    _write_osie_layout(tmp_path / "b", [(40, 60)], nan)
    with pytest.raises(DataFormatError, match=r"fixations\.mat.*NaN"):
        load_osie(tmp_path / "b")

    ragged = [
        [
            {
                "fix_x": np.array([[1.0, 2.0]]),
                "fix_y": np.array([[5.0]]),
                "fix_duration": np.array([[100]], dtype=np.uint16),
            }
        ]
    ]
    _write_osie_layout(tmp_path / "c", [(40, 60)], ragged)
    with pytest.raises(DataFormatError, match="lengths differ"):
        load_osie(tmp_path / "c")

    (tmp_path / "d" / "eye").mkdir(parents=True)
    (tmp_path / "d" / "eye" / "fixations.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(DataFormatError, match=r"fixations\.mat"):
        load_osie(tmp_path / "d")

    with pytest.raises(DataFormatError, match="not found"):
        load_osie(tmp_path / "missing")

    _write_osie_layout(tmp_path / "e", [(40, 60)], good)
    (tmp_path / "e" / "split.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"split\.json"):
        load_osie(tmp_path / "e")
