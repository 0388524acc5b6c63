"""Atomic file output: a reader sees the old file or the new one, never half of one.

Everything the toolkit writes (results, maps, checkpoints) goes through a temporary file in the
destination's folder and ``os.replace``, so an interrupted run leaves no partial output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The temporary file keeps ``path``'s suffix, so writers that pick a format by suffix
    (``np.save``, Pillow) behave as for ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
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
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write text or bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
