"""Train/test splits on row indices: an explicit split column, or a seeded (group-aware) split."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import (
    GroupShuffleSplit,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedShuffleSplit,
)

from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitResult:
    """Sorted row indices of each side, and which rule made them (recorded in run records)."""

    train: np.ndarray
    test: np.ndarray
    description: str


def labelled_rows(y: np.ndarray) -> np.ndarray:
    """Indices of labelled rows: single-label y != -1; multi-label rows with no negative entry."""
    y = np.asarray(y)
    if y.ndim == 1:
        return np.flatnonzero(y != -1)
    if y.ndim == 2:
        return np.flatnonzero(~(y < 0).any(axis=1))
    raise InvalidInputError(f"y must be (N,) class indices or (N, C) multi-hot, got shape {y.shape}")


def split_train_test(
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    splits: np.ndarray | None = None,
    test_size: float = 0.2,
    random_state: int = 0,
) -> SplitResult:
    """Split labelled rows into train and test.

    `splits` given: rows whose value starts with "train" (case-insensitive) train, all others are held
    out. Otherwise a seeded split with `test_size`: group-aware when `groups` is given (no group on both
    sides), stratified for single-label y, plain shuffled for multi-label y.
    """
    y = np.asarray(y)
    rows = labelled_rows(y)
    n = len(y)
    for name, values in (("groups", groups), ("splits", splits)):
        if values is not None and len(values) != n:
            raise InvalidInputError(f"{name} has {len(values)} rows but y has {n}; they must match")
    if len(rows) == 0:
        raise InvalidInputError("no labelled rows to split (every label is -1)")
    excluded = n - len(rows)
    if splits is not None:
        train, test, description = _split_by_column(np.asarray(splits, dtype=object)[rows], rows)
    else:
        if not 0.0 < test_size < 1.0:
            raise InvalidInputError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
        y_l = y[rows]
        groups_l = None if groups is None else np.asarray(groups)[rows]
        try:
            tr, te, description = _seeded_split(y_l, groups_l, test_size=test_size, random_state=random_state)
        except ValueError as exc:
            raise InvalidInputError(f"cannot split {len(rows)} labelled rows: {exc}") from exc
        train, test = rows[tr], rows[te]
    if len(train) == 0 or len(test) == 0:
        raise InvalidInputError(
            f"the split left {len(train)} train and {len(test)} test rows; "
            "add more labelled rows (or groups) or change test_size"
        )
    description += f"; {len(train)} train / {len(test)} test rows"
    if excluded:
        description += f"; {excluded} unlabelled rows excluded"
    return SplitResult(train=np.sort(train), test=np.sort(test), description=description)


def split_validation(
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    val_size: float = 0.2,
    random_state: int = 0,
) -> SplitResult:
    """Split training rows (all labelled) into fit and validation rows for a search.

    Group-aware when `groups` is given (no group on both sides; stratified by class when possible),
    multilabel-stratified for multi-hot y (iterative stratification, Sechidis et al. 2011, so that
    rare labels reach both sides), stratified for class labels. `train` of the result is the rows a
    search fits on, `test` the validation rows it scores on.
    """
    y = np.asarray(y)
    if not 0.0 < val_size < 1.0:
        raise InvalidInputError(f"val_size must be between 0 and 1 (exclusive), got {val_size}")
    if groups is not None and len(groups) != len(y):
        raise InvalidInputError(f"groups has {len(groups)} rows but y has {len(y)}; they must match")
    try:
        if y.ndim == 2 and groups is None:
            fit_rows, val_rows, description = _multilabel_stratified_split(
                y, test_size=val_size, random_state=random_state
            )
        else:
            fit_rows, val_rows, description = _seeded_split(
                y, groups, test_size=val_size, random_state=random_state
            )
    except ValueError as exc:
        raise InvalidInputError(
            f"cannot split {len(y)} training rows into fit and validation: {exc}"
        ) from exc
    if len(fit_rows) == 0 or len(val_rows) == 0:
        raise InvalidInputError(
            f"the validation split left {len(fit_rows)} fit and {len(val_rows)} validation rows; "
            "add labelled rows (or groups) or change val_size"
        )
    description = f"validation: {description}; {len(fit_rows)} fit / {len(val_rows)} validation rows"
    return SplitResult(train=np.sort(fit_rows), test=np.sort(val_rows), description=description)


def _multilabel_stratified_split(
    y: np.ndarray, *, test_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray, str]:
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    msss = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
    train, test = next(msss.split(np.zeros((len(y), 1)), y))
    description = (
        f"multilabel-stratified: MultilabelStratifiedShuffleSplit(test_size={test_size}, "
        f"random_state={random_state})"
    )
    return train, test, description


def _split_by_column(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    names = [str(v).strip() for v in values]
    is_train = np.array([v.lower().startswith("train") for v in names], dtype=bool)
    train, test = rows[is_train], rows[~is_train]
    if len(train) == 0 or len(test) == 0:
        found = ", ".join(f"{k!r} ({c} rows)" for k, c in sorted(Counter(names).items()))
        side = "train" if len(train) == 0 else "held-out"
        raise InvalidInputError(
            f"the split column leaves no {side} rows among labelled rows; values found: {found}. "
            "Mark training rows with a value starting with 'train' (e.g. 'train') and held-out rows "
            "with anything else (e.g. 'test' or 'val'), or drop the split column for a seeded split"
        )
    train_values = sorted({v for v, t in zip(names, is_train, strict=True) if t})
    test_values = sorted({v for v, t in zip(names, is_train, strict=True) if not t})
    description = (
        f"split column: train = values starting with 'train' ({', '.join(train_values)}), "
        f"held out = {', '.join(test_values)}"
    )
    return train, test, description


def _seeded_split(
    y: np.ndarray, groups: np.ndarray | None, *, test_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray, str]:
    dummy_x = np.zeros((len(y), 1))
    single_label = y.ndim == 1
    if groups is not None:
        n_groups = len(np.unique(groups))
        if single_label:
            try:
                return _stratified_group_split(y, groups, n_groups, test_size=test_size, seed=random_state)
            except ValueError as exc:
                reason = f" (stratification impossible: {exc})"
                logger.info("falling back to GroupShuffleSplit%s", reason)
        else:
            reason = " (multi-label)"
        gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
        train, test = next(gss.split(dummy_x, groups=groups))
        description = (
            f"group-aware: GroupShuffleSplit(test_size={test_size}, random_state={random_state}){reason}, "
            f"{test_size:.0%} of {n_groups} groups held out, no group on both sides"
        )
        return train, test, description
    if single_label:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
        try:
            train, test = next(sss.split(dummy_x, y))
            return (
                train,
                test,
                f"stratified: StratifiedShuffleSplit(test_size={test_size}, random_state={random_state})",
            )
        except ValueError as exc:
            reason = f" (stratification impossible: {exc})"
            logger.warning("falling back to an unstratified ShuffleSplit%s", reason)
    else:
        reason = " (multi-label)"
    ss = ShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
    train, test = next(ss.split(dummy_x))
    return train, test, f"random: ShuffleSplit(test_size={test_size}, random_state={random_state}){reason}"


def _stratified_group_split(
    y: np.ndarray, groups: np.ndarray, n_groups: int, *, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """First fold of StratifiedGroupKFold as the test side; ValueError when that cannot work."""
    n_splits = round(1 / test_size)
    if n_splits < 2:
        raise ValueError(f"test_size={test_size} needs fewer than 2 folds")
    if n_groups < n_splits:
        raise ValueError(f"{n_groups} groups are fewer than the {n_splits} folds test_size={test_size} needs")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "The least populated class has only k members": still the best stratification on offer.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        train, test = next(cv.split(np.zeros((len(y), 1)), y, groups))
    if len(train) == 0 or len(test) == 0:
        raise ValueError("a fold came out empty")
    description = (
        f"group-aware stratified: StratifiedGroupKFold(n_splits={n_splits}, shuffle=True, "
        f"random_state={seed}), first fold held out, {n_groups} groups, no group on both sides"
    )
    return train, test, description
