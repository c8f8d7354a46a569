"""Rows of several caches (e.g. one per backbone) aligned by row identity, never by position.

A row's identity is its image's content hash plus its box (`RowTable.row_keys`); an image that
appears twice (identical bytes under two names) is matched occurrence by occurrence. Every row must
be in every cache: a row missing from one is an error that says how many and which.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featurekit.cache.featureset import FeatureSet
from featurekit.errors import InvalidInputError

MAX_NAMED_ROWS = 5


@dataclass(frozen=True)
class ColumnBlock:
    """The columns [start, stop) that one cache fills in features concatenated side by side."""

    name: str
    start: int
    stop: int


def _identities(features: FeatureSet) -> list[tuple[str, int]]:
    """(row key, occurrence number) per row: unique even when the same image appears twice."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for key in features.rows.row_keys():
        out.append((key, seen[key]))
        seen[key] += 1
    return out


def align_feature_sets(
    feature_sets: Sequence[FeatureSet], *, names: Sequence[str] | None = None
) -> list[FeatureSet]:
    """The same feature sets, each reordered to the first one's row order.

    Raises InvalidInputError when a row of one cache is missing from another (naming how many rows
    and the first few paths), or when the caches disagree on the class names or on a row's label.
    """
    sets = list(feature_sets)
    labels = list(names) if names is not None else [f"cache {i + 1}" for i in range(len(sets))]
    if not sets:
        raise InvalidInputError("no caches to align")
    if len(labels) != len(sets):
        raise InvalidInputError(f"{len(labels)} names for {len(sets)} caches")
    reference, ref_name = sets[0], labels[0]
    ref_ids = _identities(reference)
    aligned = [reference]
    for other, other_name in zip(sets[1:], labels[1:], strict=True):
        position = {identity: i for i, identity in enumerate(_identities(other))}
        missing = [i for i, identity in enumerate(ref_ids) if identity not in position]
        extra = len(other) - (len(ref_ids) - len(missing))
        if missing or extra:
            raise InvalidInputError(_missing_message(reference, ref_name, other, other_name, missing, extra))
        order = np.array([position[identity] for identity in ref_ids], dtype=np.int64)
        moved = other.subset(order)
        _check_labels(reference, ref_name, moved, other_name)
        aligned.append(moved)
    return aligned


def _missing_message(
    reference: FeatureSet,
    ref_name: str,
    other: FeatureSet,
    other_name: str,
    missing: list[int],
    extra: int,
) -> str:
    parts = []
    if missing:
        shown = ", ".join(reference.rows.paths[i] for i in missing[:MAX_NAMED_ROWS])
        more = f" and {len(missing) - MAX_NAMED_ROWS} more" if len(missing) > MAX_NAMED_ROWS else ""
        parts.append(
            f"{len(missing)} of the {len(reference)} rows of {ref_name} are missing from {other_name} "
            f"({shown}{more})"
        )
    if extra:
        ref_ids = set(_identities(reference))
        rows = [i for i, identity in enumerate(_identities(other)) if identity not in ref_ids]
        shown = ", ".join(other.rows.paths[i] for i in rows[:MAX_NAMED_ROWS])
        more = f" and {len(rows) - MAX_NAMED_ROWS} more" if len(rows) > MAX_NAMED_ROWS else ""
        parts.append(f"{len(rows)} rows of {other_name} are missing from {ref_name} ({shown}{more})")
    return (
        "; ".join(parts)
        + ". Rows are matched by image content (and box), so every cache must hold the same images: "
        "extract the same source with each backbone"
    )


def _check_labels(reference: FeatureSet, ref_name: str, other: FeatureSet, other_name: str) -> None:
    if reference.class_names != other.class_names:
        raise InvalidInputError(
            f"{ref_name} and {other_name} have different classes ({reference.class_names} vs "
            f"{other.class_names}); extract the same labelled source with each backbone"
        )
    a, b = reference.y, other.y
    if (a is None) != (b is None):
        raise InvalidInputError(f"only one of {ref_name} and {other_name} has labels")
    if a is not None and b is not None and not np.array_equal(a, b):
        differs = np.flatnonzero((a != b).reshape(len(a), -1).any(axis=1))
        shown = ", ".join(reference.rows.paths[i] for i in differs[:MAX_NAMED_ROWS])
        raise InvalidInputError(
            f"{len(differs)} rows have other labels in {other_name} than in {ref_name} ({shown}); "
            "the caches must be made from the same labelled source"
        )


def concatenate_features(
    aligned: Sequence[FeatureSet], *, names: Sequence[str]
) -> tuple[np.ndarray, list[ColumnBlock]]:
    """The aligned feature sets side by side (N, sum of dims), and the column block of each."""
    blocks, start = [], 0
    for features, name in zip(aligned, names, strict=True):
        blocks.append(ColumnBlock(name=name, start=start, stop=start + features.feature_dim))
        start += features.feature_dim
    X = np.hstack([f.X for f in aligned]) if len(aligned) > 1 else aligned[0].X
    return X, blocks
