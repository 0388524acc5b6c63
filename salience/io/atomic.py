"""Atomic file output: a reader sees the old file or the new one, never half of one.

Everything the toolkit writes (results, maps, checkpoints) goes through a temporary file in the
destination's folder and ``os.replace``, so an interrupted run leaves no partial output. A
write that fails because the disk is full raises :class:`DiskFullError` naming the file, whatever
the writer's own words for it were.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# How writers say "disk full" without an errno: numpy's short write ("307200 requested and 64480
# written"), safetensors ("No space left on device (os error 28)").
_FULL_MESSAGES = re.compile(
    r"\d+ requested and \d+ written|no space left on device|os error 28", re.I
)


class DiskFullError(OSError):
    """A file that could not be written because its disk (or the user's quota) is full."""


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc``, raised while writing into ``folder``, means the disk is full: by its
    errno, by its message, or (for writers that report only a position mismatch, like
    ``torch.save``) by the folder's file system having no free block left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if _FULL_MESSAGES.search(str(exc)):
        return True
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _disk_full_error(path: Path) -> DiskFullError:
    error = DiskFullError(f"{path}: disk full, no space left on its device to write it")
    error.errno = errno.ENOSPC
    return error


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The temporary file keeps ``path``'s suffix, so writers that pick a format by suffix
    (``np.save``, Pillow) behave as for ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
        )
    except OSError as exc:
        if _disk_full(exc, path.parent):
            raise _disk_full_error(path) from exc
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600, and some writers (safetensors) recreate the file 0600: give the
    # result the permissions a plain open() would, once it is written
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        tmp_path.chmod(0o666 & ~umask)
        os.replace(tmp_path, path)
    except Exception as exc:
        if _disk_full(exc, path.parent):
            raise _disk_full_error(path) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write text or bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)


# what atomic_path's temporary files are called: ".<stem>.<8 random characters>.tmp<suffix>"
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[^.]+)?$")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` that a killed writer left in
    ``folder``; only for a caller that holds the folder (no writer is running there)."""
    removed = []
    for path in Path(folder).iterdir():
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
