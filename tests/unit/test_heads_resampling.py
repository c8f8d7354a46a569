"""Random under-/over-sampling: exact class counts, seeded, training rows only, and it helps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import balanced_accuracy_score

from featurekit import api
from featurekit.cache import RowTable, write_cache
from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.heads.resampling import ResampledHead, resample_rows
from featurekit.persist import load_model

Y = np.array([0] * 10 + [1] * 3 + [2] * 5)


def test_under_sampling_cuts_every_class_to_the_smallest_without_repeats() -> None:
    rows = resample_rows(Y, strategy="under", random_state=0)
    assert np.bincount(Y[rows]).tolist() == [3, 3, 3]
    assert len(np.unique(rows)) == len(rows) and np.all(np.diff(rows) > 0)
    assert set(rows[Y[rows] == 1]) == {10, 11, 12}  # the smallest class is kept whole


def test_over_sampling_raises_every_class_to_the_largest_keeping_all_rows() -> None:
    rows = resample_rows(Y, strategy="over", random_state=0)
    assert np.bincount(Y[rows]).tolist() == [10, 10, 10]
    assert set(rows) == set(range(len(Y)))  # every original row at least once
    assert np.bincount(rows, minlength=len(Y))[Y == 0].tolist() == [1] * 10  # majority not repeated


def test_resampling_is_seeded() -> None:
    a = resample_rows(Y, strategy="under", random_state=0)
    assert np.array_equal(a, resample_rows(Y, strategy="under", random_state=0))
    others = [resample_rows(Y, strategy="under", random_state=s) for s in range(1, 6)]
    assert any(not np.array_equal(a, b) for b in others)
    np.testing.assert_array_equal(resample_rows(Y, strategy="none"), np.arange(len(Y)))


@pytest.mark.parametrize(
    ("y", "strategy", "message"),
    [
        (Y, "smote", "resample strategy 'smote' is not one of none, under, over"),
        (np.zeros((4, 2), dtype=int), "under", r"y of shape \(4, 2\) is multi-label"),
    ],
)
def test_bad_requests_are_refused(y: np.ndarray, strategy: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        resample_rows(y, strategy=strategy)


@pytest.mark.parametrize("strategy", ["under", "over"])
def test_resampling_raises_balanced_accuracy_on_imbalanced_data(strategy: str) -> None:
    X, y = make_classification(
        n_samples=1200, n_features=10, weights=[0.95], class_sep=0.6, flip_y=0, random_state=3
    )
    train, test = slice(0, 800), slice(800, None)
    plain = make_head("logreg").fit(X[train], y[train])
    resampled = ResampledHead(make_head("logreg"), strategy=strategy).fit(X[train], y[train])
    assert np.bincount(y[train])[1] < 60  # really imbalanced
    expected = np.bincount(y[train]).min() if strategy == "under" else np.bincount(y[train]).max()
    assert resampled.n_resampled_ == 2 * expected
    plain_score = balanced_accuracy_score(y[test], plain.predict(X[test]))
    assert balanced_accuracy_score(y[test], resampled.predict(X[test])) > plain_score + 0.05


@pytest.fixture
def imbalanced_cache(tmp_path: Path) -> Path:
    X, y = make_classification(
        n_samples=300, n_features=12, weights=[0.8, 0.15], n_classes=3, n_informative=5, random_state=0
    )
    rows = RowTable(
        paths=[f"{i:03d}.png" for i in range(len(y))],
        content_hashes=[f"{i:064x}" for i in range(len(y))],
        class_names=["a", "b", "c"],
        labels=y.astype(np.int64),
    )
    return write_cache(
        tmp_path / "c.h5", features=X.astype(np.float32), rows=rows, provenance={"backbone": "synthetic"}
    )


def test_fit_resamples_training_rows_only_and_records_it(imbalanced_cache: Path, tmp_path: Path) -> None:
    plain = api.fit(imbalanced_cache, head="logreg", out=tmp_path / "p.skops", reports_dir=tmp_path)
    over = api.fit(
        imbalanced_cache, head="logreg", out=tmp_path / "o.skops", reports_dir=tmp_path, resample="over"
    )
    assert over.n_train == plain.n_train == 240 and over.n_test == plain.n_test == 60
    # the held-out rows are scored as they are: same rows, same class counts in the confusion matrix
    assert [sum(r) for r in over.metrics["confusion_matrix"]] == [
        sum(r) for r in plain.metrics["confusion_matrix"]
    ]
    meta = load_model(over.model_path).metadata
    assert meta["resample"] == "over" and meta["n_train_fitted"] > 240
    assert type(load_model(over.model_path).estimator).__name__ == "LogisticRegressionHead"
    assert load_model(plain.model_path).metadata["n_train_fitted"] == 240
    assert over.metrics["balanced_accuracy"] != plain.metrics["balanced_accuracy"]


def test_fit_refuses_resampling_multilabel_and_unknown_strategies(tmp_path: Path) -> None:
    Ym = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 10, dtype=np.uint8)
    rows = RowTable(
        paths=[f"{i}.png" for i in range(40)],
        content_hashes=[f"{i:064x}" for i in range(40)],
        class_names=["x", "y"],
        labels=Ym,
    )
    cache = write_cache(
        tmp_path / "m.h5",
        features=np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32),
        rows=rows,
        provenance={"backbone": "synthetic"},
    )
    with pytest.raises(InvalidInputError, match="resample='under' balances single-label classes"):
        api.fit(cache, head="logreg", out=tmp_path / "m.skops", reports_dir=tmp_path, resample="under")
    with pytest.raises(InvalidInputError, match="resample must be one of none, under, over, got 'smote'"):
        api.fit(cache, head="logreg", out=tmp_path / "m.skops", reports_dir=tmp_path, resample="smote")


def test_threshold_folds_resample_their_own_training_part() -> None:
    from featurekit.evaluation.operating_point import choose_threshold

    X, y = make_classification(n_samples=300, n_features=8, weights=[0.85], random_state=0)
    plain = choose_threshold(make_head("logreg"), X, y, rule="eer")
    over = choose_threshold(ResampledHead(make_head("logreg"), strategy="over"), X, y, rule="eer")
    # A head fitted on balanced rows scores positives higher, so its EER point moves up towards 0.5
    # (the out-of-fold rows themselves are scored as they are, never resampled).
    assert plain < 0.3 < over < 0.7
