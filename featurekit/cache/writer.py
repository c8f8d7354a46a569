"""Committing extraction output in units from a background thread, so disk I/O overlaps compute.

The extraction loop `add`s each batch; every `commit_every` rows the buffered rows become one
unit, handed to a writer thread (a bounded queue keeps at most two units in memory). `close`
commits the rest and waits; an error in the thread is raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from featurekit.cache.journal import FailedRow, Journal
from featurekit.cache.runs import DECODERS


@dataclass
class _Pending:
    features: list[np.ndarray] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    failures: list[FailedRow] = field(default_factory=list)
    decoders: list[np.ndarray] = field(default_factory=list)
    batch_sizes: set[int] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return len(self.keys) + len(self.failures)


_DONE = object()


class UnitWriter:
    """Buffer rows and commit them to `journal` in units of about `commit_every` rows. `run`: the
    record of this run, stored in each unit with the batch sizes its rows were computed at."""

    def __init__(
        self, journal: Journal, *, commit_every: int, dim: int, run: dict[str, Any] | None = None
    ) -> None:
        if commit_every < 1:
            raise ValueError(f"commit_every must be at least 1, got {commit_every}")
        self.journal = journal
        self.run = run
        self.commit_every = commit_every
        self.dim = dim
        self.committed_rows = 0
        self.committed_units = 0
        self._pending = _Pending()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="featurekit-unit-writer", daemon=True)
        self._thread.start()

    def add(
        self,
        features: np.ndarray,
        keys: Sequence[str],
        paths: Sequence[str],
        failures: Sequence[FailedRow] = (),
        *,
        decoder: np.ndarray | None = None,
        batch_size: int = 0,
    ) -> None:
        """`decoder`: each row's decoder code (runs.DECODERS; default: cpu); `batch_size`: rows per
        forward pass these rows were computed in (0: not known)."""
        self._raise_thread_error()
        if len(keys):
            self._pending.features.append(np.asarray(features, dtype=np.float32))
            self._pending.keys.extend(keys)
            self._pending.paths.extend(paths)
            codes = np.full(len(keys), DECODERS["cpu"], np.uint8) if decoder is None else decoder
            self._pending.decoders.append(np.asarray(codes, dtype=np.uint8))
            if batch_size:
                self._pending.batch_sizes.add(int(batch_size))
        self._pending.failures.extend(failures)
        if self._pending.rows >= self.commit_every:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._pending.rows:
            self._queue.put(self._pending)  # blocks while two units wait: memory stays bounded
            self._pending = _Pending()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain: after a failure nothing more is written
            assert isinstance(item, _Pending)
            try:
                features = (
                    np.concatenate(item.features) if item.features else np.empty((0, self.dim), np.float32)
                )
                run = None
                if self.run is not None:
                    run = (
                        {**self.run, "batch_sizes": sorted(item.batch_sizes)}
                        if item.batch_sizes
                        else self.run
                    )
                self.journal.commit(
                    features=features,
                    keys=item.keys,
                    paths=item.paths,
                    failures=item.failures,
                    run=run,
                    decoder=np.concatenate(item.decoders) if item.decoders else np.empty(0, np.uint8),
                )
                self.committed_rows += item.rows
                self.committed_units += 1
            except BaseException as exc:  # re-raised in the extraction thread by add/close
                self._error = exc

    def _raise_thread_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Commit what is buffered, wait for the thread, raise its error if it had one."""
        if self._thread.is_alive():
            self._hand_over()
            self._queue.put(_DONE)
            self._thread.join()
        self._raise_thread_error()

    def __enter__(self) -> UnitWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Also on an error or an interruption: the rows already embedded are complete, keep them.
        self.close()
