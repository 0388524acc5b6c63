"""Atomic output: all or nothing, normal permissions whoever created the file."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from salience.io.atomic import atomic_path, atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_get_the_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "w.safetensors") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp))  # recreates the file itself
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "a.txt") == 0o644
    assert _mode(tmp_path / "w.safetensors") == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
