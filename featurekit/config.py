"""Frozen dataclasses that are the schema of every setting.

Explicit options override a backbone's own defaults, which override global defaults;
the *resolved* values are what a cache and a run record store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

RESIZE_MODES = ("crop", "squash", "border")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")


@dataclass(frozen=True)
class PreprocessOverrides:
    """What the user asked for; None means "use the backbone's own value"."""

    img_size: int | None = None
    resize_mode: str | None = None  # crop | squash | border (timm's crop_mode center | squash | border)
    crop_pct: float | None = None
    interpolation: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class Preprocess:
    """Resolved preprocessing: every field set; recorded in the cache's provenance."""

    img_size: int
    resize_mode: str
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    exif_transpose: bool = True  # EXIF orientation applied before anything else
    rgba_background: tuple[int, int, int] = (255, 255, 255)  # transparent pixels composited on white

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        values = dict(data)
        for key in ("mean", "std", "rgba_background"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
