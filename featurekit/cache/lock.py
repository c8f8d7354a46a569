"""One extractor per cache: an advisory lock file `<cache>.lock` beside the cache.

The lock is a `flock` on that file, which the kernel drops when the holder dies however it
dies (kill -9 included), so a dead process never blocks the cache; the file's JSON says who holds
it (pid, host, start time, command) for the message a second extractor gets. A lock file left by a
dead process is reclaimed with a warning. Readers never take the lock: they only ever see the
committed cache file, which is replaced atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from featurekit.errors import CacheLockedError

logger = logging.getLogger(__name__)


def lock_path(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".lock")


def _holder_text(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    started = holder.get("started")
    since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if started else ""
    command = f" ({holder['command']})" if holder.get("command") else ""
    return f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}{since}{command}"


def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


class CacheLock:
    """Exclusive right to write one cache; a context manager. `acquire` fails fast, never waits."""

    def __init__(self, cache_path: Path) -> None:
        self.path = lock_path(Path(cache_path))
        self._fd: int | None = None
        self.reclaimed_from: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> CacheLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                cache = self.path.name.removesuffix(".lock")
                raise CacheLockedError(
                    f"{cache} is being written by {_holder_text(holder)}; wait for it to finish or stop "
                    "it (its committed work is kept, and the same command resumes)"
                ) from None
            # The holder may have removed the file between our open and flock: lock the live file.
            try:
                same = os.path.samestat(os.fstat(fd), self.path.stat())
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_holder(fd)
            if previous:
                self.reclaimed_from = previous
                logger.warning(
                    "reclaimed the lock of %s from %s, which stopped without releasing it; "
                    "its committed work is kept",
                    self.path.name.removesuffix(".lock"),
                    _holder_text(previous),
                )
            me = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.time(),
                "command": " ".join(sys.argv[:1] + sys.argv[1:4])[:200],
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
            os.fsync(fd)
            self._fd = fd
            return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink while still holding the flock, so a waiter that opened the old file retries.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> CacheLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def is_locked(cache_path: Path) -> bool:
    """Whether a live process holds the cache's lock (an extraction or repair is running now)."""
    path = lock_path(Path(cache_path))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
