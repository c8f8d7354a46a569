"""split_train_test: split-column rule, stratified, group-aware and multi-label splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurekit.errors import InvalidInputError
from featurekit.evaluation import split_train_test


def _check_partition(result_train: np.ndarray, result_test: np.ndarray, labelled: np.ndarray) -> None:
    assert np.all(np.diff(result_train) > 0) and np.all(np.diff(result_test) > 0)  # sorted, unique
    assert not set(result_train) & set(result_test)
    np.testing.assert_array_equal(np.sort(np.concatenate([result_train, result_test])), labelled)


def test_stratified_split_keeps_class_proportions() -> None:
    y = np.repeat([0, 1, 2], [600, 300, 100])
    np.random.default_rng(0).shuffle(y)
    result = split_train_test(y, test_size=0.2, random_state=0)
    assert len(result.test) == 200
    np.testing.assert_array_equal(np.bincount(y[result.test]), [120, 60, 20])
    assert result.description.startswith("stratified: StratifiedShuffleSplit(test_size=0.2, random_state=0)")
    _check_partition(result.train, result.test, np.arange(1000))


def test_unlabelled_rows_are_never_used() -> None:
    y = np.array([0, 1] * 50)
    y[::7] = -1
    result = split_train_test(y)
    labelled = np.flatnonzero(y != -1)
    _check_partition(result.train, result.test, labelled)
    assert f"{(y == -1).sum()} unlabelled rows excluded" in result.description


def test_seeded_split_is_reproducible_and_seed_dependent() -> None:
    y = np.arange(200) % 4
    a, b = split_train_test(y, random_state=1), split_train_test(y, random_state=1)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, split_train_test(y, random_state=2).test)


def test_group_split_has_no_group_on_both_sides_and_stratifies() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(100), 5)
    y = np.repeat(rng.integers(0, 2, 100), 5)  # one label per group, like a patient's images
    result = split_train_test(y, groups=groups, test_size=0.2, random_state=0)
    assert not set(groups[result.train]) & set(groups[result.test])
    assert "StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)" in result.description
    assert "no group on both sides" in result.description
    assert len(result.test) == pytest.approx(100, abs=10)
    assert y[result.test].mean() == pytest.approx(y.mean(), abs=0.05)


def test_group_split_falls_back_to_group_shuffle_when_stratification_is_impossible() -> None:
    groups = np.repeat(np.arange(3), 10)  # 3 groups < 5 folds
    y = np.arange(30) % 2
    result = split_train_test(y, groups=groups, test_size=0.2, random_state=0)
    assert result.description.startswith("group-aware: GroupShuffleSplit(test_size=0.2, random_state=0)")
    assert "stratification impossible: 3 groups are fewer than the 5 folds" in result.description
    assert not set(groups[result.train]) & set(groups[result.test])


def test_multilabel_uses_plain_shuffle_or_group_shuffle() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(100, 4)).astype(np.uint8)
    plain = split_train_test(y, test_size=0.25)
    assert plain.description.startswith("random: ShuffleSplit(test_size=0.25, random_state=0) (multi-label)")
    assert len(plain.test) == 25
    groups = np.repeat(np.arange(20), 5)
    grouped = split_train_test(y, groups=groups)
    assert grouped.description.startswith("group-aware: GroupShuffleSplit")
    assert not set(groups[grouped.train]) & set(groups[grouped.test])


def test_single_member_class_falls_back_to_unstratified_split() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2])
    result = split_train_test(y)
    assert "random: ShuffleSplit" in result.description
    assert "stratification impossible" in result.description


def test_split_column_rule() -> None:
    y = np.array([0, 1, 0, 1, 0, 1, -1])
    splits = np.array(["Train", "training", "TRAIN_extra", "val", "test", " test ", "train"], dtype=object)
    result = split_train_test(y, splits=splits)
    np.testing.assert_array_equal(result.train, [0, 1, 2])
    np.testing.assert_array_equal(result.test, [3, 4, 5])
    assert result.description.startswith(
        "split column: train = values starting with 'train' (TRAIN_extra, Train, training), "
        "held out = test, val"
    )


def test_split_column_without_held_out_rows_explains_the_fix() -> None:
    y = np.zeros(6, dtype=np.int64)
    splits = np.array(["train"] * 4 + ["Training"] * 2)
    with pytest.raises(
        InvalidInputError,
        match=r"no held-out rows.*values found: 'Training' \(2 rows\), 'train' \(4 rows\)\. "
        r"Mark training rows with a value starting with 'train'",
    ):
        split_train_test(y, splits=splits)


def test_split_column_without_train_rows_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match=r"no train rows.*'test' \(3 rows\)"):
        split_train_test(np.zeros(3, dtype=np.int64), splits=np.array(["test"] * 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": np.arange(3)}, "groups has 3 rows but y has 4"),
        ({"splits": np.array(["train"])}, "splits has 1 rows but y has 4"),
        ({"test_size": 1.5}, "test_size must be between 0 and 1"),
        ({"test_size": 0.0}, "test_size must be between 0 and 1"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        split_train_test(np.array([0, 1, 0, 1]), **kwargs)  # type: ignore[arg-type]


def test_all_unlabelled_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="no labelled rows"):
        split_train_test(np.full(5, -1))


def test_single_group_cannot_be_split() -> None:
    with pytest.raises(InvalidInputError, match="cannot split 10 labelled rows"):
        split_train_test(np.arange(10) % 2, groups=np.zeros(10))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=10, max_value=80),
    n_groups=st.integers(min_value=2, max_value=12),
    seed=st.integers(min_value=0, max_value=1000),
    test_size=st.sampled_from([0.2, 0.25, 0.3, 0.5]),
)
def test_group_split_properties(n: int, n_groups: int, seed: int, test_size: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(-1, 3, size=n)
    y[:2] = [0, 1]  # at least two labelled rows
    groups = rng.integers(0, n_groups, size=n)
    if len(np.unique(groups[y != -1])) < 2:
        return
    result = split_train_test(y, groups=groups, test_size=test_size, random_state=seed)
    _check_partition(result.train, result.test, np.flatnonzero(y != -1))
    assert not set(groups[result.train]) & set(groups[result.test])


# --------------------------------------------------------------------------- validation splits


def test_validation_split_is_multilabel_stratified(rng: np.random.Generator) -> None:
    from featurekit.evaluation import split_validation

    Y = (rng.random((500, 12)) < np.linspace(0.02, 0.3, 12)).astype(np.uint8)
    result = split_validation(Y, val_size=0.2, random_state=0)
    assert "multilabel-stratified" in result.description
    assert len(result.test) == 100 and not set(result.train) & set(result.test)
    # Every label with at least 5 positives reaches both sides, in close to the overall proportion.
    for j in range(12):
        total = Y[:, j].sum()
        if total >= 5:
            assert 0 < Y[result.test, j].sum() < total
            assert abs(Y[result.test, j].sum() / total - 0.2) < 0.12


def test_validation_split_keeps_groups_apart_and_stratifies_classes(rng: np.random.Generator) -> None:
    from featurekit.evaluation import split_validation

    y = rng.integers(0, 3, 300)
    groups = np.array([f"g{i // 6}" for i in range(300)], dtype=object)
    grouped = split_validation(y, groups=groups, val_size=0.2, random_state=1)
    assert not set(groups[grouped.train]) & set(groups[grouped.test])
    assert "group-aware" in grouped.description
    plain = split_validation(y, val_size=0.25, random_state=1)
    assert "stratified" in plain.description
    np.testing.assert_allclose(np.bincount(y[plain.test]) / len(plain.test), np.bincount(y) / 300, atol=0.02)
    with pytest.raises(InvalidInputError, match="val_size"):
        split_validation(y, val_size=1.0)
