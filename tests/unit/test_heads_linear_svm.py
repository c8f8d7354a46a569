"""The `linear-svm` head: calibrated probabilities, C="auto", class weights, multi-label, save/load."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.heads.linear_svm import AUTO_PENALTY, LinearSVMHead
from featurekit.persist import load_model, save_model


def test_multiclass_learns_and_rows_sum_to_one() -> None:
    X, y = make_classification(
        n_samples=600,
        n_features=40,
        n_informative=10,
        n_classes=4,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    head = make_head("linear-svm", random_state=0).fit(X_tr, y_tr)
    assert isinstance(head, LinearSVMHead)
    assert head.n_features_in_ == 40
    np.testing.assert_array_equal(head.classes_, [0, 1, 2, 3])
    proba = head.predict_proba(X_te)
    assert proba.shape == (len(X_te), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(head.predict(X_te), head.classes_[proba.argmax(axis=1)])
    assert (head.predict(X_te) == y_te).mean() > 0.85
    assert head.n_iter_.shape == (1,) and head.n_iter_[0] >= 1


def test_binary_probabilities_are_calibrated_not_hard() -> None:
    X, y = make_classification(n_samples=400, n_features=20, flip_y=0.1, random_state=1)
    head = make_head("linear-svm").fit(X, y)
    proba = head.predict_proba(X)
    assert proba.shape == (400, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[:, 1].min() > 0 and proba[:, 1].max() < 1 and proba[:, 1].std() > 0.2
    assert (head.predict(X) == y).mean() > 0.8
    # sigmoid calibration: mean predicted probability close to the observed rate of class 1
    assert abs(proba[:, 1].mean() - y.mean()) < 0.05


def test_auto_C_scales_inversely_with_the_number_of_rows() -> None:
    X, y = make_classification(n_samples=400, n_features=10, random_state=5)
    small = make_head("linear-svm").fit(X[:100], y[:100])
    large = make_head("linear-svm").fit(X, y)
    assert np.isclose(small.C_, 1 / (AUTO_PENALTY * 100))
    assert np.isclose(large.C_, small.C_ / 4)
    fixed = make_head("linear-svm", C=0.5).fit(X, y)
    assert fixed.C_ == 0.5
    assert fixed.estimator_.calibrated_classifiers_[0].estimator.C == 0.5


def test_standardize_makes_head_invariant_to_feature_scale() -> None:
    X, y = make_classification(n_samples=200, n_features=10, random_state=2)
    scale = np.logspace(-3, 3, 10)
    plain = make_head("linear-svm", random_state=0).fit(X, y).predict_proba(X)
    scaled = make_head("linear-svm", random_state=0).fit(X * scale, y).predict_proba(X * scale)
    np.testing.assert_allclose(plain, scaled, atol=1e-5)
    assert make_head("linear-svm", standardize=False).fit(X, y).scaler_ is None


def test_class_weight_balanced_raises_balanced_accuracy_on_imbalanced_data() -> None:
    X, y = make_classification(
        n_samples=3000, n_features=20, n_informative=4, weights=[0.95, 0.05], class_sep=0.6, random_state=4
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    plain = make_head("linear-svm").fit(X_tr, y_tr)
    balanced = make_head("linear-svm", class_weight="balanced").fit(X_tr, y_tr)
    bacc_plain = balanced_accuracy_score(y_te, plain.predict(X_te))
    bacc_balanced = balanced_accuracy_score(y_te, balanced.predict(X_te))
    # the weights reach the calibration too, so they are not undone by it
    assert bacc_balanced > bacc_plain + 0.05


def test_rare_class_gets_fewer_folds_and_single_row_class_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(42, 4))
    y = np.array([0] * 20 + [1] * 20 + [2] * 2)
    X[y == 2] += 5
    with caplog.at_level(logging.WARNING, logger="featurekit.heads.linear_svm"):
        head = make_head("linear-svm").fit(X, y)
    assert "calibrating with cv=2 instead of 3" in caplog.text
    np.testing.assert_array_equal(head.classes_, [0, 1, 2])
    with pytest.raises(
        InvalidInputError, match=r"class 2 has 1 training row; .* drop the class or use logreg"
    ):
        make_head("linear-svm").fit(X[:41], y[:41])
    with pytest.raises(InvalidInputError, match=r"y has only one class \(0\)"):
        make_head("linear-svm").fit(X[:20], y[:20])


def test_multilabel_is_one_vs_rest_with_multi_hot_outputs(caplog: pytest.LogCaptureFixture) -> None:
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=5, random_state=0)
    Y[:, 3] = 0  # never present
    Y[:, 4] = 0
    Y[7, 4] = 1  # a single positive row: predicted as its training rate
    with caplog.at_level(logging.INFO, logger="featurekit.heads.linear_svm"):
        head = make_head("linear-svm", class_weight="balanced").fit(X, Y)
    assert "2 label(s) with fewer than 2 positive or negative rows" in caplog.text
    np.testing.assert_array_equal(head.classes_, np.arange(5))
    pred = head.predict(X)
    proba = head.predict_proba(X)
    assert pred.shape == proba.shape == (300, 5)
    assert pred.dtype == np.int64
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    np.testing.assert_array_equal(proba[:, 3], 0.0)
    np.testing.assert_allclose(proba[:, 4], 1 / 300)
    assert (pred[:, :3] == Y[:, :3]).mean() > 0.75
    assert head.n_iter_.shape == (3,)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": 0}, r"C must be a positive number or 'auto', got 0"),
        ({"C": "big"}, r"C must be a positive number or 'auto', got 'big'"),
        ({"cv": 1}, r"cv must be an integer of at least 2 \(calibration folds\), got 1"),
        ({"max_iter": 0}, r"max_iter must be a positive integer, got 0"),
        ({"class_weight": "even"}, r"class_weight must be None, 'balanced' or a dict, got 'even'"),
    ],
)
def test_invalid_hyperparameters_are_refused(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    head = make_head("linear-svm", **params)  # stored as given; checked in fit
    with pytest.raises(InvalidInputError, match=message):
        head.fit(X, y)


def test_dict_class_weight_is_refused_for_multilabel() -> None:
    X, Y = make_multilabel_classification(n_samples=40, n_features=5, n_classes=3, random_state=0)
    with pytest.raises(InvalidInputError, match="class_weight as a dict is not supported for multi-label"):
        make_head("linear-svm", class_weight={0: 1.0, 1: 2.0}).fit(X, Y)


@pytest.mark.parametrize("multilabel", [False, True])
def test_save_load_round_trip_gives_identical_probabilities(tmp_path: Path, multilabel: bool) -> None:
    if multilabel:
        X, y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=0)
        y[:, 2] = 1
    else:
        X, y = make_classification(n_samples=120, n_features=12, n_informative=6, n_classes=3, random_state=0)
    head = make_head("linear-svm", class_weight="balanced").fit(X, y)
    loaded = load_model(save_model(tmp_path / "svm.skops", head, metadata={"feature_dim": X.shape[1]}))
    assert isinstance(loaded.estimator, LinearSVMHead)
    assert loaded.estimator.get_params() == head.get_params()
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.estimator.predict(X), head.predict(X))
