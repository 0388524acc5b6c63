"""NUS Scene on the real data: column order, dropped fixations, the committed split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from salience.data.nus_scene import packaged_split


def test_columns_are_row_then_column(nus_scene_root: Path) -> None:
    """Read as (y, x), almost no fixation leaves a non-square image; read as (x, y), many do."""
    cells = scipy.io.loadmat(
        nus_scene_root / "tidy" / "fixations.mat", squeeze_me=True, struct_as_record=False
    )["fixations"]
    sizes = scipy.io.loadmat(
        nus_scene_root / "tidy" / "imgInfo.mat", squeeze_me=True, struct_as_record=False
    )["imgInfo"].size
    outside_as_yx = outside_as_xy = total = 0
    for i, row in enumerate(cells):
        h, w = sizes[i]
        if h == w:
            continue
        for cell in row:
            data = np.asarray(cell, dtype=float).reshape(-1, 4) if np.size(cell) else None
            if data is None:
                continue
            a, b = data[:, 0] - 1, data[:, 1] - 1
            outside_as_yx += np.sum((a < 0) | (a >= h) | (b < 0) | (b >= w))
            outside_as_xy += np.sum((a < 0) | (a >= w) | (b < 0) | (b >= h))
            total += len(data)
    assert outside_as_yx / total < 0.001
    assert outside_as_xy / total > 0.1


def test_loader(nus_scene, nus_scene_root: Path) -> None:
    assert len(nus_scene) == 500
    assert 0 < nus_scene.dropped < 20
    assert nus_scene.image_span_degrees is not None
    stim = nus_scene.by_id("003")
    assert stim.size == (1200, 1600)
    assert nus_scene.ppd(stim) == 1600 / nus_scene.image_span_degrees
    cells = scipy.io.loadmat(
        nus_scene_root / "tidy" / "fixations.mat", squeeze_me=True, struct_as_record=False
    )["fixations"]
    raw = np.asarray(cells[0, 0], dtype=float)
    sp = nus_scene[0].scanpaths[0]
    np.testing.assert_allclose(sp.x, raw[:, 1] - 1)
    np.testing.assert_allclose(sp.y, raw[:, 0] - 1)
    np.testing.assert_allclose(sp.onset, raw[:, 2])
    np.testing.assert_allclose(sp.duration, raw[:, 3])
    assert all(np.all(np.diff(p.onset) > 0) for s in nus_scene for p in s.scanpaths)
    for s in nus_scene:  # every kept fixation is inside its image
        x, y = s.fixations()
        assert np.all((x >= 0) & (x < s.width) & (y >= 0) & (y < s.height))


def test_committed_split_is_fixed_and_disjoint(nus_scene) -> None:
    split = packaged_split()
    assert {k: len(v) for k, v in split.items()} == {"train": 300, "val": 100, "test": 100}
    ids = [i for v in split.values() for i in v]
    assert sorted(ids) == sorted(nus_scene.ids)
    assert nus_scene.splits == split
    assert len(nus_scene.split("test")) == 100
