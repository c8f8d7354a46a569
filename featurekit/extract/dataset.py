"""Per-image loading for extraction: every image decoded inside its own guard.

A broken image yields a failure record for its own row; it never substitutes another image
(the feature row would then belong to the wrong file) and never stops the batch.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from featurekit.images.decode import bomb_warnings_as_errors, load_image
from featurekit.images.failures import BadImageError
from featurekit.images.index import ImageIndex


@dataclass(frozen=True)
class BadInput:
    """One row that could not be turned into a tensor: where, at which stage, why."""

    row: int
    path: str
    stage: str  # "read" | "decode" | "crop" (BadImageError.stage) | "transform"
    reason: str


Sample = tuple[int, torch.Tensor | None, BadInput | None]


class IndexDataset(Dataset[Sample]):
    """Rows of an ImageIndex as tensors made by `transform`, in the order of `rows`.

    `threads` > 1 decodes the images of a loader batch on that many threads (`__getitems__`, which
    the DataLoader calls with a batch's positions). PIL releases the GIL while it decodes and
    resamples, so an in-process loader (the CPU default) uses every core between forward passes
    instead of one. How the work is shared is `_StagedBatch`'s business.
    """

    def __init__(
        self,
        index: ImageIndex,
        *,
        rows: Sequence[int],
        transform: Callable[[Image.Image], torch.Tensor],
        exif_transpose: bool = True,
        background: tuple[int, int, int] = (255, 255, 255),
        threads: int = 1,
    ) -> None:
        self.index = index
        self.rows = np.asarray(rows, dtype=np.int64)
        self.transform = transform
        self.exif_transpose = exif_transpose
        self.background = background
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> Sample:
        with bomb_warnings_as_errors():
            return self._sample(position)

    def __getitems__(self, positions: list[int]) -> list[Sample]:
        # The filter is entered once for the batch and all its threads: catch_warnings swaps one
        # process-wide list, so threads must not each enter it.
        with bomb_warnings_as_errors():
            if self.threads <= 1 or len(positions) <= 1:
                return [self._sample(position) for position in positions]
            return _StagedBatch(self, positions).run(self._threads(), helpers=self.threads - 1)

    def _threads(self) -> ThreadPoolExecutor:
        # A forked loader worker inherits the pool object but none of its threads: start its own.
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="featurekit-decode")
            self._pool_pid = os.getpid()
        return self._pool

    def close(self) -> None:
        """Stop the decode threads (a later batch starts new ones)."""
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.shutdown(wait=True)
        self._pool = None

    def _sample(self, position: int) -> Sample:
        """One row, decoded and transformed; the caller holds `bomb_warnings_as_errors()`."""
        row, image, bad = self._open(position)
        return (row, None, bad) if image is None else self._finish(row, image)

    def _open(self, position: int) -> tuple[int, Image.Image | None, BadInput | None]:
        """Row `position`'s image, decoded (and cropped to its box), or its failure."""
        row = int(self.rows[position])
        try:
            image = load_image(
                self.index,
                row,
                exif_transpose=self.exif_transpose,
                background=self.background,
                filtered=True,
            )
        except Exception as exc:  # the per-image guard: any failure is this row's, reported, not fatal
            return row, None, self._failure(row, "decode", exc)
        return row, image, None

    def _finish(self, row: int, image: Image.Image) -> Sample:
        """A decoded image through `transform` (resize, crop), or its failure."""
        try:
            return row, self.transform(image), None
        except Exception as exc:  # as in _open: this row's failure only
            return row, None, self._failure(row, "transform", exc)

    def _failure(self, row: int, stage: str, exc: Exception) -> BadInput:
        if isinstance(exc, BadImageError):  # a specific reason, without the path repeated
            stage, reason = exc.stage, exc.reason
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return BadInput(row=row, path=self.index.paths[row], stage=stage, reason=reason)


class _StagedBatch:
    """One loader batch decoded on the calling thread and resized by helper threads as it goes.

    Each image needs a decode (`IndexDataset._open`: file reads and JPEG parsing in Python, then
    PIL's C decoder) and a resize (`_finish`: almost all in PIL's C resampler, without the GIL).
    Handing whole images to every thread (`pool.map`) made two threads no faster than one on
    CIFAR-sized JPEGs (2 cores): both threads spent the decode's Python part fighting over the
    GIL. Here the calling thread decodes, in order, and queues each image; helpers resize queued
    images and decode only when nothing is queued (so many cores are not left waiting on one
    decoding thread); once all are decoded, the caller resizes too. On 2 cores, per image: 32 px
    CIFAR JPEGs to 224 px 0.60 → 0.46 ms, 350 px photos 1.13–1.24 → 1.04 ms
    (bench/results/cpu-staged-decode-ab-2026-12-03.md).
    """

    def __init__(self, dataset: IndexDataset, positions: list[int]) -> None:
        self.dataset = dataset
        self.positions = positions
        self.samples: list[Sample | None] = [None] * len(positions)
        self.decoded: deque[tuple[int, int, Image.Image]] = deque()  # (slot, row, image); thread-safe
        self._claim = threading.Lock()
        self._next = 0  # the next slot to decode

    def run(self, pool: ThreadPoolExecutor, *, helpers: int) -> list[Sample]:
        jobs = [pool.submit(self._work, decode_first=False) for _ in range(helpers)]
        self._work(decode_first=True)
        for job in jobs:
            job.result()  # every failure is caught per image; anything else is a bug: raise it
        done = [sample for sample in self.samples if sample is not None]
        if len(done) != len(self.samples):  # a scheduling bug, never bad input: rows must not shift
            raise RuntimeError(f"staged decode finished {len(done)} of {len(self.samples)} images")
        return done

    def _work(self, *, decode_first: bool) -> None:
        # A thread stops when nothing is left to decode and nothing decoded waits. An image
        # another thread is still decoding is queued by that thread, which then loops again, so
        # every image is resized by someone.
        steps = (self._decode_one, self._resize_one)
        first, then = steps if decode_first else steps[::-1]
        while first() or then():
            pass

    def _decode_one(self) -> bool:
        with self._claim:
            slot = self._next
            if slot >= len(self.positions):
                return False
            self._next += 1
        row, image, bad = self.dataset._open(self.positions[slot])
        if image is None:
            self.samples[slot] = (row, None, bad)
        else:
            self.decoded.append((slot, row, image))
        return True

    def _resize_one(self) -> bool:
        try:
            slot, row, image = self.decoded.popleft()
        except IndexError:
            return False
        self.samples[slot] = self.dataset._finish(row, image)
        return True


@dataclass
class Batch:
    rows: torch.Tensor  # (B,) int64 rows that decoded
    images: torch.Tensor  # (B, H, W, 3) uint8, resized and cropped, not yet normalised
    failures: list[BadInput]


def collate_samples(samples: list[Sample]) -> Batch:
    good = [(row, tensor) for row, tensor, _ in samples if tensor is not None]
    failures = [bad for _, _, bad in samples if bad is not None]
    if good:
        rows = torch.tensor([row for row, _ in good], dtype=torch.int64)
        images = torch.stack([tensor for _, tensor in good])
    else:
        rows = torch.empty(0, dtype=torch.int64)
        images = torch.empty(0)
    return Batch(rows=rows, images=images, failures=failures)
