"""Matching requested rows against rows a cache already holds (by content, not by position)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurekit.cache.featureset import FeatureSet, RowTable
from featurekit.cache.store import CachedRows


@dataclass(frozen=True)
class ReusePlan:
    """For each requested row: where its features come from.

    `cached[i]` is the row of the existing cache holding row i's features, or -1.
    `to_extract` lists one requested row per distinct missing row key (identical images
    are extracted once); `same_as[i]` is the requested row whose features row i shares.
    """

    cached: np.ndarray
    to_extract: list[int]
    same_as: np.ndarray


def plan_reuse(requested: RowTable, existing: FeatureSet | CachedRows | None) -> ReusePlan:
    known: dict[str, int] = {}
    if existing is not None:
        known = {key: i for i, key in enumerate(existing.rows.row_keys())}
    keys = requested.row_keys()
    cached = np.full(len(keys), -1, dtype=np.int64)
    same_as = np.arange(len(keys), dtype=np.int64)
    first_seen: dict[str, int] = {}
    to_extract: list[int] = []
    for i, key in enumerate(keys):
        if key in known:
            cached[i] = known[key]
        elif key in first_seen:
            same_as[i] = first_seen[key]
        else:
            first_seen[key] = i
            to_extract.append(i)
    return ReusePlan(cached=cached, to_extract=to_extract, same_as=same_as)
