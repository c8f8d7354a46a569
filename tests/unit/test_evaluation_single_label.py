"""top-5 accuracy, positive log loss, ECE and the confusion matrix (data, text and PNG)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from featurekit.errors import InvalidInputError
from featurekit.evaluation import (
    METRICS,
    compute_metrics,
    expected_calibration_error,
    format_metrics,
    save_confusion_matrix_png,
)

# 7 classes; every row ranks the classes 0 > 1 > 2 > ... > 6.
SCORES7 = np.array([0.3, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02])
PROBA7 = np.tile(SCORES7, (3, 1))
Y7 = np.array([0, 4, 5])  # ranked 1st, 5th, 6th: top-5 hits 2 of 3


def test_top_5_accuracy_on_seven_classes() -> None:
    m = compute_metrics(Y7, proba=PROBA7, y_pred=np.zeros(3, dtype=int), class_names=list("abcdefg"))
    assert m["top_5_accuracy"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(1 / 3)


def test_top_5_accuracy_only_with_more_than_five_classes() -> None:
    proba = np.tile([0.4, 0.3, 0.1, 0.1, 0.1], (2, 1))
    m = compute_metrics(np.array([0, 4]), proba=proba, y_pred=np.array([0, 0]), class_names=list("abcde"))
    assert "top_5_accuracy" not in m
    with pytest.raises(InvalidInputError, match=r"top_5_accuracy needs more than 5 classes.*\(2, 5\)"):
        METRICS.get("top_5_accuracy")(np.array([0, 4]), y_pred=np.array([0, 0]), proba=proba)


def test_log_loss_is_positive_and_neg_log_loss_its_negative() -> None:
    y, proba = np.array([0, 1]), np.array([[0.8, 0.2], [0.4, 0.6]])
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    m = compute_metrics(y, proba=proba, y_pred=np.array([0, 1]), class_names=["a", "b"])
    assert m["log_loss"] == pytest.approx(expected)
    assert METRICS.get("log_loss")(y, y_pred=y, proba=proba) == pytest.approx(expected)
    assert METRICS.get("neg_log_loss")(y, y_pred=y, proba=proba) == pytest.approx(-expected)


def test_log_loss_renormalises_float32_rounding_without_a_warning() -> None:
    proba = np.array([[0.7, 0.29999], [0.2, 0.79999]], dtype=np.float32)  # rows sum to 0.99999
    y = np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = METRICS.get("log_loss")(y, y_pred=y, proba=proba)
    assert got == pytest.approx(-(np.log(0.7 / 0.99999) + np.log(0.79999 / 0.99999)) / 2, rel=1e-5)


def test_ece_of_a_perfectly_calibrated_model_is_zero() -> None:
    # Confidence 0.8 on every row, and 8 of 10 rows right.
    proba = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_an_overconfident_model() -> None:
    # Confidence 0.9 on every row, but only half are right: gap 0.4.
    proba = np.tile([0.9, 0.1], (4, 1))
    assert expected_calibration_error(np.array([0, 0, 1, 1]), proba) == pytest.approx(0.4)


def test_ece_weights_each_bin_by_its_rows() -> None:
    # Bin (14/15, 1]: 2 rows at 0.95, 1 right -> |0.5 - 0.95| = 0.45, weight 2/5.
    # Bin (8/15, 9/15]: 3 rows at 0.6, 2 right -> |2/3 - 0.6| = 1/15, weight 3/5.
    proba = np.array([[0.95, 0.05], [0.05, 0.95], [0.6, 0.4], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([1, 1, 0, 0, 0])
    assert expected_calibration_error(y, proba) == pytest.approx(2 / 5 * 0.45 + 3 / 5 / 15)
    # One bin: accuracy 3/5 against mean confidence 0.74.
    assert expected_calibration_error(y, proba, n_bins=1) == pytest.approx(0.14)
    m = compute_metrics(y, proba=proba, y_pred=proba.argmax(1), class_names=["a", "b"])
    assert m["ece"] == pytest.approx(0.22)


def test_ece_uses_fifteen_bins_by_default() -> None:
    # 0.62 and 0.68 share a bin of width 1/10 but fall in (0.6, 2/3] and (2/3, 11/15] with 15 bins.
    proba = np.array([[0.62, 0.38], [0.68, 0.32]])
    y = np.array([1, 0])  # the 0.62 row is wrong, the 0.68 row right
    assert expected_calibration_error(y, proba) == pytest.approx(0.5 * 0.62 + 0.5 * 0.32)
    assert expected_calibration_error(y, proba, n_bins=10) == pytest.approx(0.65 - 0.5)


@pytest.mark.parametrize(
    ("y", "proba", "kwargs", "message"),
    [
        (np.array([0, 1]), np.array([0.2, 0.8]), {}, r"shape \(N, K\); got \(2,\) and \(2,\)"),
        (np.array([0, 1, 1]), np.eye(2), {}, r"got \(3,\) and \(2, 2\)"),
        (np.array([0, 1]), np.eye(2), {"n_bins": 0}, "n_bins must be a positive integer, got 0"),
    ],
)
def test_ece_bad_inputs(y: np.ndarray, proba: np.ndarray, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        expected_calibration_error(y, proba, **kwargs)


def test_confusion_matrix_rows_are_true_classes() -> None:
    y_true, y_pred = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    m = compute_metrics(y_true, proba=None, y_pred=y_pred, class_names=["cat", "dog", "eel", "fox"])
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert not {"log_loss", "ece", "top_5_accuracy"} & set(m)  # these need probabilities
    assert json.loads(json.dumps(m)) == m
    rows = [line.split() for line in format_metrics(m).splitlines()]
    assert ["cat", "dog", "eel", "fox"] in rows
    assert ["eel", "1", "0", "1", "0"] in rows


def test_format_metrics_does_not_print_a_big_confusion_matrix() -> None:
    n = 13
    y = np.arange(n)
    m = compute_metrics(y, proba=np.eye(n), y_pred=y, class_names=[f"c{i}" for i in range(n)])
    assert len(m["confusion_matrix"]) == n  # type: ignore[arg-type]
    text = format_metrics(m)
    assert "confusion matrix: 13x13, not printed above 12 classes" in text
    assert "[" not in text
    assert ["top_5_accuracy", "1.0000"] in [line.split() for line in text.splitlines()]


def test_save_confusion_matrix_png(tmp_path: Path) -> None:
    path = save_confusion_matrix_png([[3, 1], [0, 4]], ["no", "yes"], tmp_path / "out" / "cm.png")
    assert path == tmp_path / "out" / "cm.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidInputError, match=r"shape \(3, 3\); got \(2, 2\)"):
        save_confusion_matrix_png([[3, 1], [0, 4]], ["a", "b", "c"], tmp_path / "bad.png")


def test_importing_evaluation_does_not_import_matplotlib() -> None:
    code = "import sys, featurekit.evaluation; print(sorted(m for m in sys.modules if 'matplotlib' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
