"""VOC2007 11-point AP next to scikit-learn AP, per-class APs and the tail-accuracy curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from featurekit.errors import InvalidInputError
from featurekit.evaluation import (
    METRICS,
    TAIL_THRESHOLDS,
    compute_metrics,
    format_metrics,
    tail_accuracy_curve,
    voc11_average_precision,
)

# Class c never occurs. Ranked: a = TP, FP, TP, FP; b = TP first.
Y_ML = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.uint8)
P_ML = np.array([[0.9, 0.2, 0.1], [0.8, 0.6, 0.2], [0.7, 0.3, 0.3], [0.1, 0.1, 0.4]])
# VOC11 of a: max precision at recall >= t is 1 for t = 0..0.5 (6 points), 2/3 for t = 0.6..1 (5 points).
VOC_A = (6 * 1 + 5 * 2 / 3) / 11


def test_voc11_by_hand() -> None:
    # Ranked TP, FP, TP, FP, TP: (precision, recall) = (1, 1/3) (1/2, 1/3) (2/3, 2/3) (1/2, 2/3) (3/5, 1).
    # t = 0..0.3 -> 1 (4 points); t = 0.4..0.6 -> 2/3 (3 points); t = 0.7..1 -> 3/5 (4 points).
    y, s = np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert voc11_average_precision(y, s) == pytest.approx((4 + 3 * 2 / 3 + 4 * 3 / 5) / 11)
    # The non-interpolated AP of the same ranking is lower: (1 + 2/3 + 3/5) / 3.
    assert average_precision_score(y, s) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_voc11_counts_a_recall_of_exactly_three_tenths() -> None:
    # 10 positives: 3 ranked first (recall 0.3 at precision 1), then 7 negatives, then 7 positives.
    # With a float running-sum grid (0.30000000000000004) the t = 0.3 point would drop to 10/17.
    y = np.array([1] * 3 + [0] * 7 + [1] * 7)
    s = np.linspace(1.0, 0.0, len(y))
    assert voc11_average_precision(y, s) == pytest.approx((4 * 1 + 7 * 10 / 17) / 11)


def test_voc11_breaks_score_ties_by_row_order_like_the_devkit() -> None:
    s = np.array([0.5, 0.5])
    assert voc11_average_precision(np.array([0, 1]), s) == pytest.approx(0.5)
    assert voc11_average_precision(np.array([1, 0]), s) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        (np.array([0, 0]), np.array([0.1, 0.2]), "undefined for a class with no positive row"),
        (np.array([0, 1]), np.array([0.1, 0.2, 0.3]), r"same length; got shapes \(2,\) and \(3,\)"),
    ],
)
def test_voc11_bad_inputs(y: np.ndarray, s: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        voc11_average_precision(y, s)


def test_compute_metrics_reports_both_map_protocols() -> None:
    m = compute_metrics(Y_ML, proba=P_ML, y_pred=(P_ML > 0.5).astype(int), class_names=["a", "b", "c"])
    assert m["average_precision"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert m["map_voc11"] == pytest.approx((VOC_A + 1.0) / 2)  # c has no positive: skipped
    assert m["average_precision_excluded_classes"] == 1
    protocols = m["protocols"]
    assert isinstance(protocols, str)
    assert "non-interpolated" in protocols and "11-point" in protocols
    per_class = m["per_class"]
    assert isinstance(per_class, dict)
    assert per_class["a"]["ap_voc11"] == pytest.approx(VOC_A)
    assert per_class["b"]["ap_voc11"] == pytest.approx(1.0)
    assert per_class["c"]["ap_voc11"] is None and per_class["c"]["average_precision"] is None
    assert json.loads(json.dumps(m)) == m


def test_registered_map_voc11_skips_classes_without_positives() -> None:
    y_pred = (P_ML > 0.5).astype(int)
    assert METRICS.get("map_voc11")(Y_ML, y_pred=y_pred, proba=P_ML) == pytest.approx((VOC_A + 1.0) / 2)
    assert METRICS.get("average_precision")(Y_ML, y_pred=y_pred, proba=P_ML) == pytest.approx(
        ((1 + 2 / 3) / 2 + 1.0) / 2
    )
    with pytest.raises(InvalidInputError, match=r"proba must have shape \(N, C\) matching y_true"):
        METRICS.get("map_voc11")(Y_ML, y_pred=y_pred, proba=P_ML[:, :2])


def test_tail_accuracy_curve_by_hand() -> None:
    # 12 (row, label) pairs, 3 of them true.
    curve = tail_accuracy_curve(Y_ML, P_ML)
    assert [p["threshold"] for p in curve] == list(TAIL_THRESHOLDS)
    assert len(curve) == 20 and curve[3]["threshold"] == 0.15 and curve[-1]["threshold"] == 0.95
    by_t = {p["threshold"]: p for p in curve}
    assert by_t[0.0] == pytest.approx({"threshold": 0.0, "precision": 3 / 12, "coverage": 1.0})
    # score > 0.1 is strict: the three 0.1 scores drop out.
    assert by_t[0.1] == pytest.approx({"threshold": 0.1, "precision": 3 / 9, "coverage": 9 / 12})
    # > 0.5 keeps 0.9 (true), 0.8 (false), 0.7 (true), 0.6 (true).
    assert by_t[0.5] == pytest.approx({"threshold": 0.5, "precision": 3 / 4, "coverage": 4 / 12})
    assert by_t[0.85] == pytest.approx({"threshold": 0.85, "precision": 1.0, "coverage": 1 / 12})
    assert by_t[0.95] == {"threshold": 0.95, "precision": None, "coverage": 0.0}


def test_tail_accuracy_needs_matching_multi_hot_shapes() -> None:
    with pytest.raises(InvalidInputError, match=r"same \(N, C\) shape; got \(4, 3\) and \(4, 2\)"):
        tail_accuracy_curve(Y_ML, P_ML[:, :2])
    with pytest.raises(InvalidInputError, match="multi-hot y_true"):
        tail_accuracy_curve(np.array([0, 1]), np.eye(2))


def test_format_metrics_summarises_the_tail_curve_and_names_the_protocols() -> None:
    m = compute_metrics(Y_ML, proba=P_ML, y_pred=(P_ML > 0.5).astype(int), class_names=["a", "b", "c"])
    text = format_metrics(m)
    lines = text.splitlines()
    rows = [line.split() for line in lines]
    assert ["map_voc11", f"{(VOC_A + 1) / 2:.4f}"] in rows
    assert ["0.50", "0.7500", "0.3333"] in rows  # threshold, precision, coverage
    assert ["0.95", "-", "0.0000"] not in rows  # only a few thresholds are printed
    tail_start = next(i for i, line in enumerate(lines) if line.startswith("tail accuracy"))
    summary = [r[:1] for r in rows[tail_start + 2 : tail_start + 8]]
    assert summary == [["0.00"], ["0.25"], ["0.50"], ["0.75"], ["0.90"], []]  # 5 rows, then a blank line
    assert "mAP protocols:" in text and "11-point" in text
    assert "tail_accuracy" not in text and "{" not in text and "[" not in text
    # class a: both APs, then precision 2/3, recall 1, f1 0.8 of the thresholded predictions
    assert ["a", f"{5 / 6:.4f}", f"{VOC_A:.4f}", "0.6667", "1.0000", "0.8000", "2"] in rows
