"""Atomic output: all or nothing, normal permissions whoever created the file."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from salience.io.atomic import DiskFullError, atomic_path, atomic_write


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


class _SafetensorsLikeError(Exception):
    """A writer's own exception type whose only sign of a full disk is its message."""


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        OSError(122, "Disk quota exceeded"),
        _SafetensorsLikeError("I/O error: No space left on device (os error 28)"),
    ],
)
def test_a_full_disk_is_named_whatever_the_writer_says(tmp_path, failure):
    target = tmp_path / "out.safetensors"
    with pytest.raises(DiskFullError) as info, atomic_path(target) as tmp:
        tmp.write_bytes(b"part")
        raise failure
    assert str(info.value) == f"{target}: disk full, no space left on its device to write it"
    assert info.value.__cause__ is failure
    assert list(tmp_path.iterdir()) == []


def test_a_vague_failure_on_a_full_file_system_is_a_full_disk(tmp_path, monkeypatch):
    """torch.save says only "unexpected pos"; the file system having no free block decides."""
    target = tmp_path / "state.pt"
    full = os.statvfs_result((4096,) * 3 + (0,) * 7)  # f_bavail (index 4) is 0
    monkeypatch.setattr(os, "statvfs", lambda folder: full)
    with pytest.raises(DiskFullError), atomic_path(target):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def test_other_failures_pass_unchanged(tmp_path):
    with pytest.raises(PermissionError), atomic_path(tmp_path / "x.txt"):
        raise PermissionError(13, "Permission denied")
