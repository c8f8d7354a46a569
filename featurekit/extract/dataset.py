"""Per-image loading for extraction: every image decoded inside its own guard.

A broken image yields a failure record for its own row; it never substitutes another image
(the feature row would then belong to the wrong file) and never stops the batch.
"""

from __future__ import annotations

import os
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
    instead of one.
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
            return list(self._threads().map(self._sample, positions))

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
        row = int(self.rows[position])
        stage = "decode"
        try:
            image = load_image(
                self.index,
                row,
                exif_transpose=self.exif_transpose,
                background=self.background,
                filtered=True,
            )
            stage = "transform"
            return row, self.transform(image), None
        except Exception as exc:  # the per-image guard: any failure is this row's, reported, not fatal
            if isinstance(exc, BadImageError):  # a specific reason, without the path repeated
                stage, reason = exc.stage, exc.reason
            else:
                reason = f"{type(exc).__name__}: {exc}"
            return row, None, BadInput(row=row, path=self.index.paths[row], stage=stage, reason=reason)


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
