"""Per-image loading for extraction: every image decoded inside its own guard.

A broken image yields a failure record for its own row; it never substitutes another image
(the feature row would then belong to the wrong file) and never stops the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from featurekit.images.decode import load_image
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
    """Rows of an ImageIndex as tensors made by `transform`, in the order of `rows`."""

    def __init__(
        self,
        index: ImageIndex,
        *,
        rows: Sequence[int],
        transform: Callable[[Image.Image], torch.Tensor],
        exif_transpose: bool = True,
        background: tuple[int, int, int] = (255, 255, 255),
    ) -> None:
        self.index = index
        self.rows = np.asarray(rows, dtype=np.int64)
        self.transform = transform
        self.exif_transpose = exif_transpose
        self.background = background

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> Sample:
        row = int(self.rows[position])
        stage = "decode"
        try:
            image = load_image(
                self.index, row, exif_transpose=self.exif_transpose, background=self.background
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
