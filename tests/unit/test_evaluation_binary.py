"""FAR / FRR / HTER, the EER and min-HTER thresholds, and the binary block of compute_metrics."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from featurekit.errors import InvalidInputError
from featurekit.evaluation import (
    METRICS,
    compute_metrics,
    eer_threshold,
    far_frr_hter,
    format_metrics,
    min_hter_threshold,
)

# 3 negatives, 3 positives. Per candidate threshold (accept score >= t):
#   t     0.9   0.7   0.6   0.4   0.35  0.1
#   FAR   0     0     1/3   2/3   2/3   1
#   FRR   2/3   1/3   1/3   1/3   0     0
Y6 = np.array([0, 0, 0, 1, 1, 1])
S6 = np.array([0.1, 0.4, 0.6, 0.35, 0.7, 0.9])
PROBA6 = np.column_stack([1 - S6, S6])


@pytest.mark.parametrize(
    ("threshold", "far", "frr"),
    [(0.5, 1 / 3, 1 / 3), (0.4, 2 / 3, 1 / 3), (0.35, 2 / 3, 0.0), (0.95, 0.0, 1.0), (0.05, 1.0, 0.0)],
)
def test_far_frr_hter_on_six_scores(threshold: float, far: float, frr: float) -> None:
    got = far_frr_hter(Y6, S6, threshold)
    assert got == pytest.approx((far, frr, (far + frr) / 2))


def test_a_score_equal_to_the_threshold_is_accepted() -> None:
    far, frr, _ = far_frr_hter(np.array([0, 1]), np.array([0.5, 0.5]), 0.5)
    assert (far, frr) == (1.0, 0.0)


def test_eer_and_min_hter_thresholds_on_six_scores() -> None:
    assert eer_threshold(Y6, S6) == 0.6  # FAR = FRR = 1/3 there
    assert min_hter_threshold(Y6, S6) == 0.7  # HTER 1/6, the lowest
    assert far_frr_hter(Y6, S6, 0.7)[2] == pytest.approx(1 / 6)


def test_ties_go_to_the_largest_threshold() -> None:
    # EER: |FAR - FRR| is 1/2 at both t = 0.9 (FAR 1/2, FRR 1) and t = 0.8 (FAR 1/2, FRR 0).
    assert eer_threshold(np.array([0, 1, 0]), np.array([0.9, 0.8, 0.7])) == 0.9
    # min HTER: 1/4 at both t = 0.9 and t = 0.7.
    assert min_hter_threshold(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6])) == 0.9


def test_thresholds_are_scores_never_infinite() -> None:
    y, s = np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])  # perfectly separated
    assert eer_threshold(y, s) == 0.8
    assert min_hter_threshold(y, s) == 0.8
    assert far_frr_hter(y, s, 0.8) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        (Y6[:5], S6, r"same length; got shapes \(5,\) and \(6,\)"),
        (
            np.array([0, 2, 1]),
            np.array([0.1, 0.2, 0.3]),
            r"only 0 \(negative\) and 1 \(positive\); got values \[0, 1, 2\]",
        ),
        (np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]), r"need both negatives \(0\) and positives \(1\)"),
        (np.array([0, 1]), np.array([0.1, np.nan]), r"scores must be finite; got 1 NaN/inf"),
        (PROBA6, S6, r"1-D arrays"),
    ],
)
def test_bad_inputs_raise(y: np.ndarray, s: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        far_frr_hter(y, s, 0.5)
    with pytest.raises(InvalidInputError, match=message):
        eer_threshold(y, s)


def test_nan_threshold_raises() -> None:
    with pytest.raises(InvalidInputError, match="threshold is NaN"):
        far_frr_hter(Y6, S6, float("nan"))


def test_compute_metrics_binary_block() -> None:
    m = compute_metrics(Y6, proba=PROBA6, y_pred=(S6 >= 0.5).astype(int), class_names=["neg", "pos"])
    assert m["threshold"] == 0.5
    assert (m["far"], m["frr"], m["hter"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert m["eer"] == pytest.approx(1 / 3) and m["eer_threshold"] == 0.6
    assert m["roc_auc"] == pytest.approx(7 / 9)  # 7 of the 9 (positive, negative) pairs ordered right
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert json.loads(json.dumps(m)) == m


def test_compute_metrics_threshold_changes_far_frr_only() -> None:
    y_pred = (S6 >= 0.5).astype(int)
    m = compute_metrics(Y6, proba=PROBA6, y_pred=y_pred, class_names=["neg", "pos"], threshold=0.35)
    assert m["threshold"] == 0.35
    assert (m["far"], m["frr"], m["hter"]) == pytest.approx((2 / 3, 0.0, 1 / 3))
    assert m["accuracy"] == pytest.approx(4 / 6)  # still the head's own predictions
    assert m["eer"] == pytest.approx(1 / 3)  # does not depend on the threshold


@pytest.mark.parametrize(
    ("y", "proba", "names"),
    [
        (np.array([0, 1, 2]), np.eye(3), ["a", "b", "c"]),
        (np.eye(2, dtype=int), np.eye(2), ["a", "b"]),  # multi-label
    ],
)
def test_threshold_outside_binary_tasks_raises(y: np.ndarray, proba: np.ndarray, names: list[str]) -> None:
    y_pred = y.copy()
    with pytest.raises(InvalidInputError, match="threshold applies to binary single-label tasks"):
        compute_metrics(y, proba=proba, y_pred=y_pred, class_names=names, threshold=0.3)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_one_class_in_test_rows_leaves_the_binary_block_out(caplog: pytest.LogCaptureFixture) -> None:
    proba = np.array([[0.9, 0.1], [0.3, 0.7]])
    with caplog.at_level(logging.WARNING, logger="featurekit.evaluation.metrics"):
        m = compute_metrics(np.array([0, 0]), proba=proba, y_pred=np.array([0, 1]), class_names=["a", "b"])
    assert not {"roc_auc", "far", "frr", "hter", "eer", "threshold"} & set(m)
    assert "far, frr, hter and eer" in caplog.text


def test_registered_binary_metrics_use_threshold_half() -> None:
    y_pred = PROBA6.argmax(1)
    assert METRICS.get("far")(Y6, y_pred=y_pred, proba=PROBA6) == pytest.approx(1 / 3)
    assert METRICS.get("frr")(Y6, y_pred=y_pred, proba=PROBA6) == pytest.approx(1 / 3)
    assert METRICS.get("hter")(Y6, y_pred=y_pred, proba=PROBA6) == pytest.approx(1 / 3)
    assert METRICS.get("eer")(Y6, y_pred=y_pred, proba=PROBA6) == pytest.approx(1 / 3)
    with pytest.raises(InvalidInputError, match=r"'hter' is for binary tasks: proba must have 2 columns"):
        METRICS.get("hter")(np.array([0, 1, 2]), y_pred=np.array([0, 1, 2]), proba=np.eye(3))
    with pytest.raises(InvalidInputError, match="'far' needs predicted probabilities"):
        METRICS.get("far")(Y6, y_pred=y_pred, proba=None)


def test_format_metrics_prints_the_binary_scalars() -> None:
    m = compute_metrics(Y6, proba=PROBA6, y_pred=(S6 >= 0.5).astype(int), class_names=["neg", "pos"])
    rows = [line.split() for line in format_metrics(m).splitlines()]
    for row in (["far", "0.3333"], ["hter", "0.3333"], ["threshold", "0.5000"], ["eer_threshold", "0.6000"]):
        assert row in rows
    assert ["neg", "2", "1"] in rows and ["pos", "1", "2"] in rows  # the confusion matrix
