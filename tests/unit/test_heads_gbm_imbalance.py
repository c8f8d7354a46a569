"""LightGBM's own imbalance options: is_unbalance and scale_pos_weight, through make_head / --param."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.metrics import balanced_accuracy_score

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head


@pytest.fixture(scope="module")
def imbalanced() -> tuple[np.ndarray, ...]:
    X, y = make_classification(
        n_samples=600, n_features=10, weights=[0.93], class_sep=0.7, flip_y=0, random_state=0
    )
    return X[:400], y[:400], X[400:], y[400:]


@pytest.mark.parametrize("params", [{"is_unbalance": True}, {"scale_pos_weight": 10.0}])
def test_binary_imbalance_options_reach_lightgbm_and_help_the_rare_class(
    imbalanced: tuple[np.ndarray, ...], params: dict[str, object]
) -> None:
    X, y, Xv, yv = imbalanced
    plain = make_head("lightgbm", n_estimators=60, n_jobs=1, random_state=0).fit(X, y)
    weighted = make_head("lightgbm", n_estimators=60, n_jobs=1, random_state=0, **params).fit(X, y)
    inner = weighted.estimator_.get_params()
    assert all(inner[k] == v for k, v in params.items())
    # Unweighted, the 7 % class is hardly ever predicted (balanced accuracy ~0.5).
    before = balanced_accuracy_score(yv, plain.predict(Xv))
    assert balanced_accuracy_score(yv, weighted.predict(Xv)) > before + 0.1


def test_binary_options_apply_to_each_one_vs_rest_label() -> None:
    X, Y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=0)
    head = make_head("lightgbm", n_estimators=5, n_jobs=1, is_unbalance=True).fit(X, Y)
    assert all(e.get_params()["is_unbalance"] for e in head.estimator_.estimators_)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"is_unbalance": True, "class_weight": "balanced"}, "class_weight and is_unbalance both reweight"),
        ({"is_unbalance": True, "scale_pos_weight": 3.0}, "is_unbalance and scale_pos_weight both"),
        ({"scale_pos_weight": 0}, "scale_pos_weight must be a positive number, got 0"),
        ({"is_unbalance": "yes"}, "is_unbalance must be true or false, got 'yes'"),
    ],
)
def test_conflicting_or_bad_options_are_refused(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    with pytest.raises(InvalidInputError, match=message):
        make_head("lightgbm", n_estimators=5, **params).fit(X, y)


def test_binary_options_are_refused_for_multiclass() -> None:
    X, y = make_classification(n_samples=90, n_features=6, n_informative=4, n_classes=3, random_state=0)
    with pytest.raises(InvalidInputError, match="y has 3 classes; use class_weight='balanced'"):
        make_head("lightgbm", n_estimators=5, scale_pos_weight=2.0).fit(X, y)
