"""The `logreg` head: single-label, binary, multi-label, class weights, constant labels."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head


def test_multiclass_learns_and_gives_consistent_outputs() -> None:
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
    head = make_head("logreg", random_state=0).fit(X_tr, y_tr)
    assert head.n_features_in_ == 40
    np.testing.assert_array_equal(head.classes_, [0, 1, 2, 3])
    proba = head.predict_proba(X_te)
    assert proba.shape == (len(X_te), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(head.predict(X_te), head.classes_[proba.argmax(axis=1)])
    assert head.decision_function(X_te).shape == (len(X_te), 4)
    assert (head.predict(X_te) == y_te).mean() > 0.85


def test_binary_decision_function_is_one_dimensional() -> None:
    X, y = make_classification(n_samples=300, n_features=20, random_state=1)
    head = make_head("logreg").fit(X, y)
    decision = head.decision_function(X)
    assert decision.shape == (300,)
    np.testing.assert_array_equal(head.predict(X), (decision > 0).astype(int))
    assert (head.predict(X) == y).mean() > 0.85


def test_class_labels_are_kept() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = np.repeat([3, 7, 9], 30)
    X[:, 0] += y
    head = make_head("logreg").fit(X, y)
    np.testing.assert_array_equal(head.classes_, [3, 7, 9])
    assert set(head.predict(X)) <= {3, 7, 9}


def test_standardize_makes_head_invariant_to_feature_scale() -> None:
    X, y = make_classification(n_samples=200, n_features=10, random_state=2)
    scale = np.logspace(-3, 3, 10)
    plain = make_head("logreg").fit(X, y).predict_proba(X)
    scaled = make_head("logreg").fit(X * scale, y).predict_proba(X * scale)
    np.testing.assert_allclose(plain, scaled, atol=1e-6)
    unscaled = make_head("logreg", standardize=False).fit(X * scale, y)
    assert unscaled.scaler_ is None
    assert np.abs(unscaled.predict_proba(X * scale) - plain).max() > 1e-3


def test_smaller_C_regularises_more() -> None:
    X, y = make_classification(n_samples=300, n_features=30, random_state=3)
    strong = make_head("logreg", C=0.001).fit(X, y).estimator_
    weak = make_head("logreg", C=10.0).fit(X, y).estimator_
    assert np.linalg.norm(strong.coef_) < np.linalg.norm(weak.coef_) / 5


def test_auto_C_scales_inversely_with_the_number_of_rows() -> None:
    from featurekit.heads.logreg import AUTO_PENALTY

    X, y = make_classification(n_samples=400, n_features=10, random_state=5)
    small = make_head("logreg").fit(X[:100], y[:100])
    large = make_head("logreg").fit(X, y)
    assert np.isclose(small.C_, 1 / (AUTO_PENALTY * 100))
    assert np.isclose(large.C_, small.C_ / 4)
    assert make_head("logreg", C=0.5).fit(X, y).C_ == 0.5


def test_class_weight_balanced_raises_balanced_accuracy_on_imbalanced_data() -> None:
    X, y = make_classification(
        n_samples=3000, n_features=20, n_informative=4, weights=[0.95, 0.05], class_sep=0.6, random_state=4
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    plain = make_head("logreg").fit(X_tr, y_tr)
    balanced = make_head("logreg", class_weight="balanced").fit(X_tr, y_tr)
    bacc_plain = balanced_accuracy_score(y_te, plain.predict(X_te))
    bacc_balanced = balanced_accuracy_score(y_te, balanced.predict(X_te))
    assert bacc_balanced > bacc_plain + 0.05


def test_multilabel_is_one_vs_rest_with_multi_hot_outputs() -> None:
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=5, random_state=0)
    Y = Y.astype(np.uint8)
    head = make_head("logreg").fit(X, Y)
    np.testing.assert_array_equal(head.classes_, np.arange(5))
    pred = head.predict(X)
    proba = head.predict_proba(X)
    assert pred.shape == proba.shape == (300, 5)
    assert set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert (pred == Y).mean() > 0.8


def test_multilabel_constant_classes_get_constant_probability(caplog: pytest.LogCaptureFixture) -> None:
    X, Y = make_multilabel_classification(n_samples=120, n_features=10, n_classes=4, random_state=1)
    Y[:, 1] = 0  # never present
    Y[:, 3] = 1  # always present
    with caplog.at_level(logging.INFO, logger="featurekit.heads.logreg"):
        head = make_head("logreg").fit(X, Y)
    assert "2 label(s) constant" in caplog.text
    X_new = np.random.default_rng(0).normal(size=(7, 10))
    proba = head.predict_proba(X_new)
    np.testing.assert_array_equal(proba[:, 1], 0.0)
    np.testing.assert_array_equal(proba[:, 3], 1.0)
    np.testing.assert_array_equal(head.predict(X_new)[:, [1, 3]], np.tile([0, 1], (7, 1)))
    assert len(head.n_iter_) == 2  # only the two real problems were fitted


def test_multilabel_balanced_class_weight_works_but_dict_is_refused() -> None:
    X, Y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=2)
    assert make_head("logreg", class_weight="balanced").fit(X, Y).predict(X).shape == (80, 3)
    with pytest.raises(InvalidInputError, match="class_weight as a dict is not supported for multi-label"):
        make_head("logreg", class_weight={0: 1.0, 1: 2.0}).fit(X, Y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": 0.0}, "C must be a positive number or 'auto', got 0.0"),
        ({"C": -1}, "C must be a positive number"),
        ({"C": "big"}, "C must be a positive number or 'auto', got 'big'"),
        ({"C": True}, "C must be a positive number or 'auto', got True"),
        ({"max_iter": 0}, "max_iter must be a positive integer, got 0"),
        ({"class_weight": "auto"}, "class_weight must be None, 'balanced' or a dict, got 'auto'"),
    ],
)
def test_invalid_hyperparameters_are_reported_at_fit(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    head = make_head("logreg", **params)  # no validation in __init__ (scikit-learn contract)
    with pytest.raises(InvalidInputError, match=message):
        head.fit(X, y)


def test_multiclass_multioutput_y_is_refused() -> None:
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = np.random.default_rng(1).integers(0, 3, size=(30, 2))
    with pytest.raises(InvalidInputError, match=r"neither class labels \(N,\) nor multi-hot"):
        make_head("logreg").fit(X, y)


def test_default_fit_on_embedding_like_data_does_not_warn_about_convergence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    X, y = make_classification(
        n_samples=2000, n_features=256, n_informative=64, n_classes=10, n_clusters_per_class=1, random_state=0
    )
    with caplog.at_level(logging.WARNING, logger="featurekit.heads.logreg"):
        head = make_head("logreg").fit(X, y)
    assert "did not converge" not in caplog.text
    assert head.n_iter_.max() < 1000
