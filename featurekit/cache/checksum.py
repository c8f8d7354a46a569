"""Checksums of cache units: sha256 over a block of features and the identities of its rows."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

# Rows per verification unit of a finished cache: small enough that a damaged unit is cheap to
# re-extract, large enough that the table stays tiny (1M rows -> 245 units).
ROWS_PER_UNIT = 4096


def unit_digest(features: np.ndarray, keys: Sequence[str]) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
    digest.update(b"\0".join(key.encode("utf-8") for key in keys))
    return digest.hexdigest()


def unit_bounds(n_rows: int, rows_per_unit: int | None = None) -> list[tuple[int, int]]:
    rows_per_unit = rows_per_unit or ROWS_PER_UNIT  # read at call time: tests make units smaller
    return [(start, min(start + rows_per_unit, n_rows)) for start in range(0, n_rows, rows_per_unit)]
