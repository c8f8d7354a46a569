"""The `lightgbm` head: learning, probabilities, multi-label, class weights, parameters, save/load."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.heads.gbm import LightGBMHead

pytest.importorskip("lightgbm")

SMALL = {"n_estimators": 40, "learning_rate": 0.2, "n_jobs": 1, "random_state": 0}  # a few hundred rows


def test_multiclass_learns_and_rows_sum_to_one() -> None:
    X, y = make_classification(
        n_samples=500,
        n_features=30,
        n_informative=8,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    head = make_head("lightgbm", **SMALL).fit(X_tr, y_tr)
    assert isinstance(head, LightGBMHead)
    assert head.n_features_in_ == 30
    np.testing.assert_array_equal(head.classes_, [0, 1, 2])
    proba = head.predict_proba(X_te)
    assert proba.shape == (len(X_te), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(head.predict(X_te), head.classes_[proba.argmax(axis=1)])
    assert (head.predict(X_te) == y_te).mean() > 0.85
    # the hyperparameters reach LightGBM
    params = head.estimator_.get_params()
    assert (
        params["n_estimators"] == 40 and params["colsample_bytree"] == 0.3 and params["subsample_freq"] == 1
    )


def test_binary_with_string_labels() -> None:
    X, y = make_classification(n_samples=300, n_features=10, class_sep=1.5, random_state=1)
    labels = np.where(y == 1, "dog", "cat")
    head = make_head("lightgbm", **SMALL).fit(X, labels)
    np.testing.assert_array_equal(head.classes_, ["cat", "dog"])
    proba = head.predict_proba(X)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (head.predict(X) == labels).mean() > 0.9


def test_class_weight_balanced_raises_balanced_accuracy_on_imbalanced_data() -> None:
    X, y = make_classification(
        n_samples=800, n_features=10, n_informative=4, weights=[0.93, 0.07], class_sep=0.7, random_state=4
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    plain = make_head("lightgbm", **SMALL).fit(X_tr, y_tr)
    balanced = make_head("lightgbm", class_weight="balanced", **SMALL).fit(X_tr, y_tr)
    bacc_plain = balanced_accuracy_score(y_te, plain.predict(X_te))
    bacc_balanced = balanced_accuracy_score(y_te, balanced.predict(X_te))
    assert bacc_balanced > bacc_plain + 0.03


def test_multilabel_is_one_vs_rest_with_multi_hot_outputs(caplog: pytest.LogCaptureFixture) -> None:
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=4, random_state=0)
    Y[:, 3] = 0  # never present
    with caplog.at_level(logging.INFO, logger="featurekit.heads.gbm"):
        head = make_head("lightgbm", **SMALL).fit(X, Y)
    assert "1 label(s) constant" in caplog.text
    np.testing.assert_array_equal(head.classes_, np.arange(4))
    proba = head.predict_proba(X)
    pred = head.predict(X)
    assert pred.shape == proba.shape == (300, 4)
    assert pred.dtype == np.int64
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(proba[:, 3], 0.0)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert (pred[:, :3] == Y[:, :3]).mean() > 0.85


def test_one_class_is_refused() -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(InvalidInputError, match=r"y has only one class \(5\); .* at least 2 classes"):
        make_head("lightgbm", **SMALL).fit(X, np.full(30, 5))
    with pytest.raises(InvalidInputError, match=r"y has only one class \('cat'\)"):
        make_head("lightgbm", **SMALL).fit(X, np.array(["cat"] * 30, dtype=object))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_estimators": 0}, r"n_estimators must be a positive integer, got 0"),
        ({"learning_rate": -0.1}, r"learning_rate must be a positive number, got -0\.1"),
        ({"num_leaves": 1}, r"num_leaves must be an integer of at least 2, got 1"),
        ({"min_child_samples": 0}, r"min_child_samples must be a positive integer, got 0"),
        ({"colsample_bytree": 1.5}, r"colsample_bytree must be a fraction in \(0, 1\], got 1\.5"),
        ({"subsample": 0}, r"subsample must be a fraction in \(0, 1\], got 0"),
        ({"reg_lambda": -1}, r"reg_lambda must be a number >= 0, got -1"),
        ({"class_weight": "even"}, r"class_weight must be None, 'balanced' or a dict, got 'even'"),
        ({"n_jobs": 0}, r"n_jobs must be None or a non-zero integer"),
        ({"early_stopping": "sometimes"}, r"early_stopping must be true, false or 'auto', got 'sometimes'"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\), got 1\.0"),
        ({"n_iter_no_change": 0}, r"n_iter_no_change must be a positive integer, got 0"),
    ],
)
def test_invalid_hyperparameters_are_refused(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    head = make_head("lightgbm", **params)  # stored as given; checked in fit
    with pytest.raises(InvalidInputError, match=message):
        head.fit(X, y)


def test_dict_class_weight_is_refused_for_multilabel() -> None:
    X, Y = make_multilabel_classification(n_samples=40, n_features=5, n_classes=3, random_state=0)
    with pytest.raises(InvalidInputError, match="class_weight as a dict is not supported for multi-label"):
        make_head("lightgbm", class_weight={0: 1.0, 1: 2.0}).fit(X, Y)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("multilabel", [False, True])
def test_save_load_round_trip_gives_identical_probabilities(
    tmp_path: Path, multilabel: bool, early_stopping: bool
) -> None:
    from featurekit.persist import load_model, save_model

    if multilabel:
        X, y = make_multilabel_classification(n_samples=300, n_features=6, n_classes=3, random_state=0)
        y[:, 2] = 1
    else:
        X, y = make_classification(n_samples=300, n_features=12, n_informative=6, n_classes=3, random_state=0)
    head = make_head("lightgbm", **{**SMALL, "early_stopping": early_stopping}).fit(X, y)
    loaded = load_model(save_model(tmp_path / "gbm.skops", head, metadata={"feature_dim": X.shape[1]}))
    assert isinstance(loaded.estimator, LightGBMHead)
    assert loaded.estimator.get_params() == head.get_params()
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.estimator.predict(X), head.predict(X))


def test_importing_heads_does_not_import_lightgbm() -> None:
    code = "import sys, featurekit.heads; print('lightgbm' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr


def _overfitting_problem(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Noisy labels and a fast learning rate: the held-out loss bottoms out after a few dozen rounds."""
    return make_classification(
        n_samples=n, n_features=20, n_informative=5, n_classes=3, flip_y=0.3, random_state=3
    )


FAST = {"n_estimators": 400, "learning_rate": 0.3, "n_jobs": 1, "random_state": 0}


def test_early_stopping_keeps_the_best_round_on_held_out_rows() -> None:
    import lightgbm

    X, y = _overfitting_problem()
    head = make_head("lightgbm", early_stopping=True, **FAST).fit(X, y)
    inner = head.estimator_.estimator_
    assert isinstance(inner, lightgbm.LGBMClassifier)
    assert 1 <= head.n_estimators_ < 400
    assert head.n_estimators_ == inner.best_iteration_
    # The model keeps the rounds up to the best one only (LightGBM truncates it after stopping).
    assert inner.booster_.current_iteration() == head.n_estimators_
    np.testing.assert_array_equal(
        head.predict_proba(X), inner.predict_proba(X, num_iteration=head.n_estimators_)
    )
    assert inner.n_features_in_ == 20


def test_early_stopping_beats_boosting_on_after_the_held_out_loss_turns() -> None:
    X, y = _overfitting_problem(4000)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    stopped = make_head("lightgbm", early_stopping=True, **FAST).fit(X_tr, y_tr)
    full = make_head("lightgbm", early_stopping=False, **FAST).fit(X_tr, y_tr)
    assert full.n_estimators_ == 400
    from sklearn.metrics import log_loss

    assert log_loss(y_te, stopped.predict_proba(X_te)) < log_loss(y_te, full.predict_proba(X_te)) - 0.05


def test_early_stopping_is_off_by_default_and_auto_starts_at_ten_thousand_rows() -> None:
    from featurekit.heads.gbm import AUTO_EARLY_STOPPING_ROWS, EarlyStoppedLGBM

    X, y = _overfitting_problem(AUTO_EARLY_STOPPING_ROWS)
    params = {**FAST, "n_estimators": 200, "early_stopping": "auto"}
    default = make_head("lightgbm", **{**params, "early_stopping": False}).fit(X, y)
    assert make_head("lightgbm").early_stopping is False and default.n_estimators_ == 200
    assert isinstance(make_head("lightgbm", **params).fit(X, y).estimator_, EarlyStoppedLGBM)
    below = make_head("lightgbm", **params).fit(X[:-1], y[:-1])
    assert not isinstance(below.estimator_, EarlyStoppedLGBM)
    assert below.n_estimators_ == 200


def test_too_few_rows_to_hold_out_train_every_round(caplog: pytest.LogCaptureFixture) -> None:
    X, y = make_classification(n_samples=150, n_features=8, random_state=0)  # 15 held out: too few
    with caplog.at_level(logging.INFO, logger="featurekit.heads.gbm"):
        head = make_head("lightgbm", early_stopping=True, **{**SMALL, "n_estimators": 30}).fit(X, y)
    assert head.n_estimators_ == 30
    assert "too few to hold out" in caplog.text


def test_multilabel_early_stopping_stops_each_label_on_its_own() -> None:
    X, Y = make_multilabel_classification(
        n_samples=1500, n_features=20, n_classes=4, n_labels=2, random_state=0
    )
    Y[:, 3] = 0  # a label never present: a constant predictor, no rounds
    head = make_head("lightgbm", early_stopping=True, **FAST).fit(X, Y)
    rounds = head.n_estimators_
    assert isinstance(rounds, list) and len(rounds) == 4
    assert all(1 <= r < 400 for r in rounds[:3]) and rounds[3] == 0
    assert head.predict(X).shape == (1500, 4)
    assert (head.predict(X)[:, 3] == 0).all()
