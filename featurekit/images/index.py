"""The one in-memory description of a dataset that every image source produces."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SourceProblem:
    """One row or file that failed validation: where it is and why."""

    file: str
    row: int | None  # 1-based line number in a CSV (header = line 1); index in an npz; None for folders
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}" if self.row is not None else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True, eq=False)
class ImageIndex:
    """Columns of one dataset, one entry per row (an image, or one box of an image).

    `paths` are POSIX paths relative to `root`; for an npz source they are
    "<name>.npz:<i>" and pixels come from `array` instead of files.
    `labels` is (N,) int64 with -1 for "no label" (single-label), or (N, C) uint8
    multi-hot (multi-label), or None (unlabelled source).
    `boxes` is (N, 4) float64 x1, y1, x2, y2 in pixels, or None when rows are whole images.
    """

    source: str
    root: Path
    paths: list[str]
    class_names: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None
    boxes: np.ndarray | None = None
    groups: np.ndarray | None = None
    splits: np.ndarray | None = None
    array: np.ndarray | None = None
    skipped: list[SourceProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multilabel(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def file_path(self, row: int) -> Path:
        """Absolute path of the file behind a row (not meaningful for npz rows)."""
        return self.root / self.paths[row]

    def box(self, row: int) -> tuple[float, float, float, float] | None:
        if self.boxes is None:
            return None
        x1, y1, x2, y2 = (float(v) for v in self.boxes[row])
        return (x1, y1, x2, y2)

    def subset(self, rows: np.ndarray | list[int]) -> ImageIndex:
        """A new index with only `rows`, in that order (the npz array is shared, not copied)."""
        rows = np.asarray(rows, dtype=np.int64)

        def take(col: np.ndarray | None) -> np.ndarray | None:
            return None if col is None else col[rows]

        return replace(
            self,
            paths=[self.paths[i] for i in rows],
            labels=take(self.labels),
            boxes=take(self.boxes),
            groups=take(self.groups),
            splits=take(self.splits),
        )
