"""FeatureSet: what a cache holds, in memory, ready for heads."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from featurekit.errors import InvalidInputError, UnknownNameError

if TYPE_CHECKING:
    from featurekit.images.index import ImageIndex


@dataclass(frozen=True, eq=False)
class RowTable:
    """Per-row metadata of a cache (everything but the features).

    A row is identified by its image's content hash plus its box (NaN box = whole image),
    never by position or absolute path, so moving the dataset keeps the cache valid.
    """

    paths: list[str]
    content_hashes: list[str]
    class_names: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # (N,) int64, -1 = unlabelled; or (N, C) uint8 multi-hot
    boxes: np.ndarray | None = None  # (N, 4) float64 x1, y1, x2, y2
    groups: np.ndarray | None = None  # (N,) str
    splits: np.ndarray | None = None  # (N,) str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multilabel(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    @classmethod
    def from_index(cls, index: ImageIndex, content_hashes: list[str]) -> RowTable:
        """The rows of an image index, identified by the given content hashes."""
        return cls(
            paths=list(index.paths),
            content_hashes=content_hashes,
            class_names=list(index.class_names),
            labels=index.labels,
            boxes=index.boxes,
            groups=index.groups,
            splits=index.splits,
        )

    def row_keys(self) -> list[str]:
        """Identity of each row: content sha256, plus the box for box rows."""
        if self.boxes is None:
            return list(self.content_hashes)
        keys = []
        for digest, box in zip(self.content_hashes, self.boxes, strict=True):
            if np.isnan(box).any():
                keys.append(digest)
            else:
                keys.append(digest + "@" + ",".join(f"{v:g}" for v in box))
        return keys

    def fingerprints(self) -> list[str]:
        """Short digests of row identities: enough to recognise training rows later, small to store."""
        return [hashlib.sha256(key.encode()).hexdigest()[:16] for key in self.row_keys()]

    def subset(self, rows: np.ndarray | list[int]) -> RowTable:
        rows = np.asarray(rows, dtype=np.int64)

        def take(col: np.ndarray | None) -> np.ndarray | None:
            return None if col is None else col[rows]

        return replace(
            self,
            paths=[self.paths[i] for i in rows],
            content_hashes=[self.content_hashes[i] for i in rows],
            labels=take(self.labels),
            boxes=take(self.boxes),
            groups=take(self.groups),
            splits=take(self.splits),
        )


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features (N, D) float32 with their rows, class names and provenance."""

    X: np.ndarray
    rows: RowTable
    provenance: dict[str, Any]
    provenance_key: str

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def y(self) -> np.ndarray | None:
        return self.rows.labels

    @property
    def class_names(self) -> list[str]:
        return self.rows.class_names

    @property
    def groups(self) -> np.ndarray | None:
        return self.rows.groups

    @property
    def splits(self) -> np.ndarray | None:
        return self.rows.splits

    @property
    def multilabel(self) -> bool:
        return self.rows.multilabel

    @property
    def feature_dim(self) -> int:
        return int(self.X.shape[1])

    def subset(self, rows: np.ndarray | list[int]) -> FeatureSet:
        rows = np.asarray(rows, dtype=np.int64)
        return replace(self, X=self.X[rows], rows=self.rows.subset(rows))

    def select_blocks(self, names: list[str] | None) -> FeatureSet:
        """Only the columns of the named blocks (`extract --layers` / several `--img-size`); None: all."""
        if not names:
            return self
        return replace(self, X=self.X[:, block_columns(self.provenance, names)])


def block_names(provenance: dict[str, Any]) -> list[str]:
    """The blocks a cache holds side by side, e.g. ['layer-1.avg', 'layer-2.avg'] or ['224px', '288px']."""
    return [block["name"] for block in provenance.get("features", {}).get("layout", [])]


def block_columns(provenance: dict[str, Any], names: list[str]) -> np.ndarray:
    """Column indices of the named blocks, in the order given."""
    layout = {block["name"]: block for block in provenance.get("features", {}).get("layout", [])}
    if not layout:
        raise InvalidInputError(
            "this cache holds one embedding, not several layers or input sizes side by side; make one "
            "with `featurekit extract --layers -1,-2 …` or `--img-size 224,288` to choose blocks at fit time"
        )
    for name in names:
        if name not in layout:
            close = difflib.get_close_matches(name, list(layout), n=3, cutoff=0.5)
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise UnknownNameError(
                f"unknown feature block {name!r}; the cache holds {', '.join(layout)}{hint}"
            )
    if len(set(names)) != len(names):
        raise InvalidInputError(f"feature blocks named more than once: {', '.join(names)}")
    return np.concatenate([np.arange(layout[n]["start"], layout[n]["stop"]) for n in names])
