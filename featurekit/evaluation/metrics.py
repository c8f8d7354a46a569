"""Metrics by scikit-learn scorer name, and the metric block every evaluation reports.

Single-label: y_true/y_pred (N,) class indices, proba (N, K) with one column per class name.
Multi-label: y_true/y_pred (N, C) multi-hot, proba (N, C) per-class probabilities.

Scalar metrics live in the METRICS registry (`registry.py`); this module registers the general ones,
`binary.py` the FAR/FRR/HTER/EER family, `calibration.py` ECE and `multilabel.py` VOC mAP.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    classification_report,
    f1_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.metrics import log_loss as sk_log_loss

from featurekit.errors import InvalidInputError
from featurekit.evaluation.binary import DEFAULT_THRESHOLD, binary_metrics
from featurekit.evaluation.calibration import ece
from featurekit.evaluation.confusion import confusion_matrix_list
from featurekit.evaluation.formatting import format_metrics as format_metrics
from featurekit.evaluation.multilabel import (
    AP_PROTOCOLS,
    per_class_voc11_average_precision,
    tail_accuracy_curve,
)
from featurekit.evaluation.registry import METRICS as METRICS
from featurekit.evaluation.registry import MetricFn as MetricFn
from featurekit.evaluation.registry import need_proba

logger = logging.getLogger(__name__)

SINGLE_LABEL_METRICS = ("accuracy", "balanced_accuracy", "f1_macro")
MULTI_LABEL_METRICS = ("average_precision", "f1_micro", "f1_macro")
TOP_K = 5


@METRICS.register("accuracy")
def accuracy(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    return float(accuracy_score(y_true, y_pred))


@METRICS.register("balanced_accuracy")
def balanced_accuracy(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    return float(balanced_accuracy_score(y_true, y_pred))


@METRICS.register("f1_macro")
def f1_macro(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


@METRICS.register("f1_micro")
def f1_micro(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    return float(f1_score(y_true, y_pred, average="micro", zero_division=0))


@METRICS.register("top_5_accuracy")
def top_5_accuracy(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Share of rows whose true class is among the 5 highest probabilities (more than 5 classes only).

    scikit-learn's `top_k_accuracy_score`; on tied scores it takes the higher class index first.
    """
    p = need_proba("top_5_accuracy", proba)
    if p.ndim != 2 or p.shape[1] <= TOP_K:
        raise InvalidInputError(
            f"top_5_accuracy needs more than {TOP_K} classes (it is 1.0 otherwise); "
            f"got proba of shape {p.shape}"
        )
    return float(top_k_accuracy_score(y_true, p, k=TOP_K, labels=np.arange(p.shape[1])))


@METRICS.register("log_loss")
def log_loss(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Mean negative log-likelihood of the true class, as a positive number (lower is better).

    Rows that sum to 1 only up to float32 rounding (heads working in float32) are renormalised first;
    rows further off are passed on as they are, and scikit-learn warns about them.
    """
    p = np.asarray(need_proba("log_loss", proba), dtype=np.float64)
    sums = p.sum(axis=1, keepdims=True)
    if np.allclose(sums, 1.0, rtol=0, atol=1e-4):
        p = p / sums
    return float(sk_log_loss(y_true, p, labels=np.arange(p.shape[1])))


@METRICS.register("roc_auc")
def roc_auc(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Binary: positive-class column; multiclass: one-vs-rest macro."""
    p = need_proba("roc_auc", proba)
    if p.ndim == 2 and p.shape[1] == 2 and y_true.ndim == 1:
        return float(roc_auc_score(y_true, p[:, 1]))
    return float(roc_auc_score(y_true, p, multi_class="ovr", average="macro"))


@METRICS.register("average_precision")
def average_precision(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Macro mean of per-class AP over classes with at least one positive (NaN when none has).

    scikit-learn's non-interpolated AP; a class with no positive row is skipped, not counted as 0.
    """
    p = need_proba("average_precision", proba)
    ap = per_class_average_precision(y_true, p)
    valid = [v for v in ap if v is not None]
    return float(np.mean(valid)) if valid else float("nan")


@METRICS.register("neg_log_loss")
def neg_log_loss(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """scikit-learn's scorer sign convention (higher is better): minus `log_loss`."""
    return -log_loss(y_true, y_pred=y_pred, proba=need_proba("neg_log_loss", proba))


def per_class_average_precision(y_true: np.ndarray, proba: np.ndarray) -> list[float | None]:
    """AP of each column; None for a class with no positive in y_true (AP is undefined there)."""
    onehot = y_true if y_true.ndim == 2 else np.eye(proba.shape[1], dtype=np.int64)[y_true]
    return [
        float(average_precision_score(onehot[:, c], proba[:, c])) if onehot[:, c].any() else None
        for c in range(proba.shape[1])
    ]


def expand_proba(proba: np.ndarray, *, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Spread a head's (N, len(classes)) probabilities into (N, n_classes) columns, zeros elsewhere.

    A head fitted on a training set that lacks some class has fewer columns than there are class names.
    """
    full = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    full[:, np.asarray(classes, dtype=np.int64)] = proba
    return full


def compute_metrics(
    y_true: np.ndarray,
    *,
    proba: np.ndarray | None,
    y_pred: np.ndarray,
    class_names: list[str],
    threshold: float | None = None,
    label_thresholds: list[float] | None = None,
) -> dict[str, object]:
    """Headline metrics, `n_samples`, data blocks and `per_class`, as plain JSON-serialisable values.

    Single-label: accuracy, balanced_accuracy, f1_macro; with `proba` also top_5_accuracy (more than
    5 classes), log_loss (positive) and ece; then n_samples, confusion_matrix (nested list, row i = true
    class i, column j = predicted class j, in class_names order) and per_class.

    Binary (2 classes, both present, `proba` given) adds roc_auc and, on the class-1 probability,
    threshold, far, frr, hter at `threshold` (None means 0.5; it does not change y_pred, so accuracy
    and the confusion matrix still use the head's own predictions), and eer with eer_threshold: the
    HTER at the EER threshold picked on these same rows, an optimistic "oracle" figure.

    Multi-label: average_precision (scikit-learn, non-interpolated) and map_voc11 (VOC2007 11-point),
    both macro over classes with a positive, average_precision_excluded_classes, a `protocols` note,
    f1_micro, f1_macro, n_samples, tail_accuracy (list of {threshold, precision, coverage}) and
    per_class (with average_precision and ap_voc11 per class, and `threshold`: the label's decision
    threshold when `label_thresholds` (one per class, the ones y_pred was made with) is given).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n_classes = len(class_names)
    _check_shapes(y_true, y_pred=y_pred, proba=proba, n_classes=n_classes)
    if threshold is not None and (y_true.ndim == 2 or n_classes != 2 or math.isnan(threshold)):
        raise InvalidInputError(
            f"threshold applies to binary single-label tasks (2 classes) and must be a number; "
            f"got threshold={threshold!r} for {n_classes} classes"
            + (" (multi-label)" if y_true.ndim == 2 else "")
        )
    if label_thresholds is not None and (y_true.ndim != 2 or len(label_thresholds) != n_classes):
        raise InvalidInputError(
            f"label_thresholds (one per class) apply to multi-label tasks; got {len(label_thresholds)} "
            f"for {n_classes} classes" + ("" if y_true.ndim == 2 else " (single-label)")
        )
    if y_true.ndim == 2:
        return _multi_label_metrics(
            y_true, y_pred=y_pred, proba=proba, class_names=class_names, thresholds=label_thresholds
        )
    out: dict[str, object] = {
        name: METRICS.get(name)(y_true, y_pred=y_pred, proba=proba) for name in SINGLE_LABEL_METRICS
    }
    if proba is not None:
        if n_classes > TOP_K:
            out["top_5_accuracy"] = top_5_accuracy(y_true, y_pred=y_pred, proba=proba)
        out["log_loss"] = log_loss(y_true, y_pred=y_pred, proba=proba)
        out["ece"] = ece(y_true, y_pred=y_pred, proba=proba)
    if n_classes == 2 and proba is not None:
        if len(np.unique(y_true)) == 2:
            out["roc_auc"] = roc_auc(y_true, y_pred=y_pred, proba=proba)
            t = DEFAULT_THRESHOLD if threshold is None else threshold
            out.update(binary_metrics(y_true, proba[:, 1], threshold=t))
        else:
            logger.warning(
                "roc_auc left out, as are far, frr, hter and eer: the test rows hold only one class"
            )
    out["n_samples"] = len(y_true)
    out["confusion_matrix"] = confusion_matrix_list(y_true, y_pred, n_classes=n_classes)
    report: dict[str, Any] = classification_report(
        y_true,
        y_pred,
        labels=np.arange(n_classes),
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    out["per_class"] = {name: _class_row(report[name]) for name in class_names}
    return out


def _class_row(row: dict[str, Any]) -> dict[str, float | int]:
    return {
        "precision": float(row["precision"]),
        "recall": float(row["recall"]),
        "f1": float(row["f1-score"]),
        "support": int(row["support"]),
    }


def _multi_label_metrics(
    y_true: np.ndarray,
    *,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    class_names: list[str],
    thresholds: list[float] | None,
) -> dict[str, object]:
    out: dict[str, object] = {}
    ap: list[float | None] = [None] * len(class_names)
    voc: list[float | None] = [None] * len(class_names)
    if proba is not None:
        ap = per_class_average_precision(y_true, proba)
        voc = per_class_voc11_average_precision(y_true, proba)
        valid = [v for v in ap if v is not None]
        valid_voc = [v for v in voc if v is not None]
        out["average_precision"] = float(np.mean(valid)) if valid else None
        out["map_voc11"] = float(np.mean(valid_voc)) if valid_voc else None
        # Classes without a positive test row have no AP; say how many so mAP is not misread.
        out["average_precision_excluded_classes"] = len(ap) - len(valid)
        out["protocols"] = AP_PROTOCOLS
    out["f1_micro"] = f1_micro(y_true, y_pred=y_pred, proba=proba)
    out["f1_macro"] = f1_macro(y_true, y_pred=y_pred, proba=proba)
    out["n_samples"] = len(y_true)
    if proba is not None:
        out["tail_accuracy"] = tail_accuracy_curve(y_true, proba)
    report: dict[str, Any] = classification_report(
        y_true,
        y_pred,
        labels=np.arange(len(class_names)),
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    out["per_class"] = {
        name: {
            "average_precision": ap[c],
            "ap_voc11": voc[c],
            **_class_row(report[name]),
            **({} if thresholds is None else {"threshold": float(thresholds[c])}),
        }
        for c, name in enumerate(class_names)
    }
    return out


def _check_shapes(
    y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> None:
    if y_true.shape != y_pred.shape:
        raise InvalidInputError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    if len(y_true) == 0:
        raise InvalidInputError("no rows to evaluate")
    if y_true.ndim == 2 and y_true.shape[1] != n_classes:
        raise InvalidInputError(
            f"multi-hot y has {y_true.shape[1]} columns but there are {n_classes} class names"
        )
    if y_true.ndim == 1 and (y_true.min() < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise InvalidInputError(
            f"class indices must lie in 0..{n_classes - 1} (drop unlabelled -1 rows first); "
            f"got y_true {y_true.min()}..{y_true.max()}, y_pred {y_pred.min()}..{y_pred.max()}"
        )
    if proba is not None and proba.shape != (len(y_true), n_classes):
        raise InvalidInputError(
            f"proba must have shape {(len(y_true), n_classes)} (one column per class name), "
            f"got {proba.shape}; "
            "use expand_proba() when the head saw fewer classes"
        )
