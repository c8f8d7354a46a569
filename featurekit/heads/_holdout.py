"""The held-out share of its training rows that a head stops its own training on (`mlp`'s epochs,
`lightgbm`'s boosting rounds)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

MIN_HELD_OUT_ROWS = 20  # below this a held-out loss is noise: the head trains to its limit instead


def held_out_split(
    n_rows: int, fraction: float, *, strata: np.ndarray | None, random_state: int | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted (train, held-out) row indices with round(`fraction` · `n_rows`) held out, or None when
    that is fewer than MIN_HELD_OUT_ROWS. Stratified by `strata` (class labels) when every class has
    2 rows and the held-out share can hold one of each; at random otherwise."""
    n_held_out = round(fraction * n_rows)
    if n_held_out < MIN_HELD_OUT_ROWS:
        return None
    stratify = None
    if strata is not None:
        _, counts = np.unique(strata, return_counts=True)
        if np.min(counts) >= 2 and n_held_out >= len(counts):
            stratify = strata
    train, held_out = train_test_split(
        np.arange(n_rows), test_size=n_held_out, random_state=random_state, stratify=stratify
    )
    return np.sort(train), np.sort(held_out)
