"""Atomic file replacement: write under a temporary name, fsync, rename, fsync the folder.

A crash at any moment leaves either the old file or the new one under the final name, never a
half-written one; what it can leave is a temporary file, which `remove_temporaries` deletes on
the next run (while holding the cache's lock, so never another live writer's).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from featurekit.cache import faults

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """`.NAME.tmp-PID` in the same folder (a rename within one file system is atomic)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    with contextlib.suppress(OSError):  # some file systems cannot open a directory for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically becomes `path`.

    The caller writes and closes the temporary file inside the block; it is then fsynced and
    renamed. On an exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        faults.crash_point("before-rename")
        tmp.replace(path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_matching(folder: Path, name_prefix: str) -> list[Path]:
    """Delete the files `.{name_prefix}*` in `folder` (temporaries left by crashed writers)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for candidate in folder.glob(f".{name_prefix}*"):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
    return removed
