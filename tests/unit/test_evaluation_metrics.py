"""compute_metrics / format_metrics against hand-computed values."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from featurekit.errors import InvalidInputError, UnknownNameError
from featurekit.evaluation import METRICS, compute_metrics, expand_proba, format_metrics

# y_true / y_pred of 3 classes: recalls 1/2, 2/2, 1/2; precisions 1/2, 2/3, 1/1.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])
PROBA3 = np.eye(3)[Y_PRED] * 0.8 + 0.2 / 3
NAMES3 = ["cat", "dog", "eel"]

# Multi-label: class c never occurs; threshold 0.5 gives TP 3, FP 1, FN 0 overall.
Y_ML = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.uint8)
P_ML = np.array([[0.9, 0.2, 0.1], [0.8, 0.6, 0.2], [0.7, 0.3, 0.3], [0.1, 0.1, 0.4]])


def test_single_label_metrics_match_hand_computed_values() -> None:
    m = compute_metrics(Y_TRUE, proba=PROBA3, y_pred=Y_PRED, class_names=NAMES3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["n_samples"] == 6
    assert "roc_auc" not in m  # binary only
    per_class = m["per_class"]
    assert isinstance(per_class, dict)
    assert per_class["dog"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per_class["eel"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert type(m["accuracy"]) is float and type(m["n_samples"]) is int
    assert type(per_class["cat"]["support"]) is int
    assert json.loads(json.dumps(m)) == m


def test_binary_adds_roc_auc() -> None:
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])  # positives beat negatives in 3 of 4 pairs
    proba = np.column_stack([1 - score, score])
    m = compute_metrics(y, proba=proba, y_pred=(score > 0.5).astype(int), class_names=["no", "yes"])
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_binary_with_one_class_in_test_leaves_roc_auc_out(caplog: pytest.LogCaptureFixture) -> None:
    y = np.zeros(3, dtype=np.int64)
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    with caplog.at_level(logging.WARNING, logger="featurekit.evaluation.metrics"):
        m = compute_metrics(y, proba=proba, y_pred=proba.argmax(1), class_names=["a", "b"])
    assert "roc_auc" not in m
    assert "roc_auc left out" in caplog.text


def test_class_absent_from_test_rows_still_has_a_row() -> None:
    m = compute_metrics(
        np.array([0, 0, 1]), proba=None, y_pred=np.array([0, 1, 1]), class_names=["a", "b", "c"]
    )
    per_class = m["per_class"]
    assert isinstance(per_class, dict)
    assert per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_multilabel_metrics_match_hand_computed_values() -> None:
    m = compute_metrics(Y_ML, proba=P_ML, y_pred=(P_ML > 0.5).astype(int), class_names=["a", "b", "c"])
    # AP(a): positives ranked 1st and 3rd -> (1 + 2/3) / 2; AP(b): positive ranked 1st -> 1; c excluded.
    assert m["average_precision"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert m["average_precision_excluded_classes"] == 1
    assert m["f1_micro"] == pytest.approx(2 * 0.75 * 1.0 / 1.75)
    assert m["f1_macro"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)
    assert m["n_samples"] == 4
    per_class = m["per_class"]
    assert isinstance(per_class, dict)
    assert per_class["a"]["average_precision"] == pytest.approx(5 / 6)
    assert per_class["c"]["average_precision"] is None
    assert per_class["a"]["support"] == 2
    assert json.loads(json.dumps(m)) == m


def test_metrics_registry_uses_scikit_learn_scorer_names() -> None:
    assert {"accuracy", "balanced_accuracy", "f1_macro", "f1_micro", "roc_auc", "average_precision"} <= set(
        METRICS.names()
    )
    acc = METRICS.get("accuracy")(Y_TRUE, y_pred=Y_PRED, proba=None)
    assert acc == pytest.approx(4 / 6)
    nll = METRICS.get("neg_log_loss")(Y_TRUE, y_pred=Y_PRED, proba=PROBA3)
    assert nll == pytest.approx(np.mean(np.log(PROBA3[np.arange(6), Y_TRUE])))
    with pytest.raises(InvalidInputError, match="'roc_auc' needs predicted probabilities"):
        METRICS.get("roc_auc")(Y_TRUE, y_pred=Y_PRED, proba=None)
    with pytest.raises(UnknownNameError, match="did you mean accuracy"):
        METRICS.get("acuracy")


def test_expand_proba_places_columns_by_class_index() -> None:
    full = expand_proba(np.array([[0.3, 0.7]]), classes=np.array([0, 2]), n_classes=3)
    np.testing.assert_array_equal(full, [[0.3, 0.0, 0.7]])


@pytest.mark.parametrize(
    ("y_pred", "proba", "names", "message"),
    [
        (Y_PRED[:5], PROBA3, NAMES3, r"y_true has shape \(6,\) but y_pred has \(5,\)"),
        (Y_PRED, PROBA3[:, :2], NAMES3, r"proba must have shape \(6, 3\).*expand_proba"),
        (Y_PRED, PROBA3, ["a", "b"], r"class indices must lie in 0\.\.1"),
    ],
)
def test_shape_errors(y_pred: np.ndarray, proba: np.ndarray, names: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        compute_metrics(Y_TRUE, proba=proba, y_pred=y_pred, class_names=names)


def test_unlabelled_rows_must_be_dropped_first() -> None:
    with pytest.raises(InvalidInputError, match="drop unlabelled -1 rows first"):
        compute_metrics(np.array([0, -1]), proba=None, y_pred=np.array([0, 0]), class_names=["a"])


def test_format_metrics_prints_headline_then_table() -> None:
    m = compute_metrics(Y_TRUE, proba=PROBA3, y_pred=Y_PRED, class_names=NAMES3)
    text = format_metrics(m)
    lines = text.splitlines()
    assert lines[0].split() == ["accuracy", "0.6667"]
    assert ["n_samples", "6"] in [line.split() for line in lines]
    assert ["class", "precision", "recall", "f1", "support"] in [line.split() for line in lines]
    assert ["dog", "0.6667", "1.0000", "0.8000", "2"] in [line.split() for line in lines]
    assert "per_class" not in text


def test_format_metrics_shows_undefined_ap_as_dash() -> None:
    m = compute_metrics(Y_ML, proba=P_ML, y_pred=(P_ML > 0.5).astype(int), class_names=["a", "b", "c"])
    rows = [line.split() for line in format_metrics(m).splitlines()]
    # per_class now has an ap_voc11 column after average_precision (both undefined for c)
    assert ["c", "-", "-", "0.0000", "0.0000", "0.0000", "0"] in rows
