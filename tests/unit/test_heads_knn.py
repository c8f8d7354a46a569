"""The `knn` head: cosine neighbours, probabilities, multi-label, parameters, save/load."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.model_selection import train_test_split

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.heads.knn import DEFAULT_N_NEIGHBORS, KNeighborsHead
from featurekit.persist import load_model, save_model


def _blobs(seed: int = 0) -> tuple[np.ndarray, ...]:
    X, y = make_classification(
        n_samples=600,
        n_features=40,
        n_informative=10,
        n_classes=4,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=seed,
    )
    return tuple(train_test_split(X, y, test_size=0.3, random_state=0, stratify=y))


def test_multiclass_learns_and_rows_sum_to_one() -> None:
    X_tr, X_te, y_tr, y_te = _blobs()
    head = make_head("knn").fit(X_tr, y_tr)
    assert isinstance(head, KNeighborsHead)
    assert head.n_neighbors_ == DEFAULT_N_NEIGHBORS == 20
    np.testing.assert_array_equal(head.classes_, [0, 1, 2, 3])
    proba = head.predict_proba(X_te)
    assert proba.shape == (len(X_te), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba > 0) & (proba < 1)).all()  # the prior pseudo-neighbour keeps them off 0 and 1
    np.testing.assert_array_equal(head.predict(X_te), head.classes_[proba.argmax(axis=1)])
    assert (head.predict(X_te) == y_te).mean() > 0.85


def test_neighbours_are_by_cosine_so_row_scale_does_not_matter() -> None:
    X_tr, X_te, y_tr, _ = _blobs(1)
    scales = np.random.default_rng(0).uniform(0.01, 100, size=(len(X_tr), 1))
    plain = make_head("knn").fit(X_tr, y_tr).predict_proba(X_te)
    rescaled = make_head("knn").fit(X_tr * scales, y_tr).predict_proba(X_te * 7.0)
    np.testing.assert_allclose(plain, rescaled, rtol=1e-6, atol=1e-9)


def test_probability_is_neighbour_vote_shrunk_to_prior() -> None:
    # Three training points on the unit circle; the query sits on class 1's two points' side.
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    y = np.array([0, 1, 1])
    head = make_head("knn", n_neighbors=2, weights="uniform").fit(X, y)
    # votes (0, 1) from the two nearest; prior (1/3, 2/3); p = (2·votes + prior)/3
    np.testing.assert_allclose(head.predict_proba([[0.05, 1.0]]), [[1 / 9, 8 / 9]])
    # a tied vote (one neighbour of each class) goes to the more frequent class, not the lower label
    np.testing.assert_allclose(head.predict_proba([[1.0, 0.01]]), [[4 / 9, 5 / 9]])
    assert head.predict([[1.0, 0.01]])[0] == 1


def test_distance_weights_favour_the_nearest_neighbour() -> None:
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    query = [[1.0, 0.2]]  # much closer (by angle) to class 0
    uniform = make_head("knn", n_neighbors=2, weights="uniform").fit(X, y).predict_proba(query)
    weighted = make_head("knn", n_neighbors=2, weights="distance").fit(X, y).predict_proba(query)
    np.testing.assert_allclose(uniform, [[0.5, 0.5]])
    assert weighted[0, 0] > 0.7


def test_fewer_rows_than_neighbours_uses_all_rows(caplog: pytest.LogCaptureFixture) -> None:
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    with caplog.at_level(logging.INFO, logger="featurekit.heads.knn"):
        head = make_head("knn", n_neighbors=10).fit(X, [0, 0, 1])
    assert head.n_neighbors_ == 3
    assert "only 3 training rows" in caplog.text
    assert head.predict([[1.0, 0.05]])[0] == 0


def test_class_labels_are_kept() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([3, 7, 9], 30)
    X = rng.normal(size=(90, 3)) * 0.1
    X[np.arange(90), np.repeat([0, 1, 2], 30)] += 1.0
    head = make_head("knn").fit(X, y)
    np.testing.assert_array_equal(head.classes_, [3, 7, 9])
    assert (head.predict(X) == y).mean() > 0.95


def test_multilabel_gives_per_label_probabilities() -> None:
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=5, random_state=0)
    Y[:, 4] = 0  # a label never present
    head = make_head("knn").fit(X, Y)
    np.testing.assert_array_equal(head.classes_, np.arange(5))
    proba = head.predict_proba(X)
    pred = head.predict(X)
    assert proba.shape == pred.shape == (300, 5)
    assert pred.dtype == np.int64
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(proba[:, 4], 0.0)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert (pred[:, :4] == Y[:, :4]).mean() > 0.8
    # per label: the share of the 20 neighbours (distance-weighted) with the label, shrunk to its rate
    assert np.corrcoef(proba[:, 0], Y[:, 0])[0, 1] > 0.5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_neighbors": 0}, r"n_neighbors must be a positive integer, got 0"),
        ({"n_neighbors": 2.5}, r"n_neighbors must be a positive integer, got 2\.5"),
        ({"weights": "gaussian"}, r"weights must be 'uniform' or 'distance', got 'gaussian'"),
        ({"n_jobs": 0}, r"n_jobs must be None or a non-zero integer"),
    ],
)
def test_invalid_hyperparameters_are_refused(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    head = make_head("knn", **params)  # stored as given; checked in fit
    with pytest.raises(InvalidInputError, match=message):
        head.fit(X, y)


def test_y_of_wrong_shape_is_refused() -> None:
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = np.random.default_rng(1).integers(0, 3, size=(10, 2))
    with pytest.raises(InvalidInputError, match=r"neither class labels \(N,\) nor multi-hot"):
        make_head("knn").fit(X, y)


@pytest.mark.parametrize("multilabel", [False, True])
def test_save_load_round_trip_gives_identical_probabilities(tmp_path: Path, multilabel: bool) -> None:
    if multilabel:
        X, y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=0)
        y[:, 2] = 1
    else:
        X, y = make_classification(n_samples=120, n_features=12, n_informative=6, n_classes=3, random_state=0)
    head = make_head("knn", n_neighbors=7).fit(X, y)
    loaded = load_model(save_model(tmp_path / "knn.skops", head, metadata={"feature_dim": X.shape[1]}))
    assert isinstance(loaded.estimator, KNeighborsHead)
    assert loaded.estimator.get_params() == head.get_params()
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.estimator.predict(X), head.predict(X))
