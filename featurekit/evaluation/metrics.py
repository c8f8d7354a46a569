"""Metrics by scikit-learn scorer name, and the metric block every evaluation reports.

Single-label: y_true/y_pred (N,) class indices, proba (N, K) with one column per class name.
Multi-label: y_true/y_pred (N, C) multi-hot, proba (N, C) per-class probabilities.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    classification_report,
    f1_score,
    log_loss,
    roc_auc_score,
)

from featurekit._registry import Registry
from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)


class MetricFn(Protocol):
    def __call__(self, y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float: ...


METRICS: Registry[MetricFn] = Registry("metric")

SINGLE_LABEL_METRICS = ("accuracy", "balanced_accuracy", "f1_macro")
MULTI_LABEL_METRICS = ("average_precision", "f1_micro", "f1_macro")


def _need_proba(name: str, proba: np.ndarray | None) -> np.ndarray:
    if proba is None:
        raise InvalidInputError(f"metric {name!r} needs predicted probabilities; this head gives none")
    return proba


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


@METRICS.register("roc_auc")
def roc_auc(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Binary: positive-class column; multiclass: one-vs-rest macro."""
    p = _need_proba("roc_auc", proba)
    if p.ndim == 2 and p.shape[1] == 2 and y_true.ndim == 1:
        return float(roc_auc_score(y_true, p[:, 1]))
    return float(roc_auc_score(y_true, p, multi_class="ovr", average="macro"))


@METRICS.register("average_precision")
def average_precision(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Macro mean of per-class AP over classes with at least one positive (NaN when none has)."""
    p = _need_proba("average_precision", proba)
    ap = per_class_average_precision(y_true, p)
    valid = [v for v in ap if v is not None]
    return float(np.mean(valid)) if valid else float("nan")


@METRICS.register("neg_log_loss")
def neg_log_loss(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    p = _need_proba("neg_log_loss", proba)
    return -float(log_loss(y_true, p, labels=np.arange(p.shape[1])))


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
    y_true: np.ndarray, *, proba: np.ndarray | None, y_pred: np.ndarray, class_names: list[str]
) -> dict[str, object]:
    """Headline metrics, `n_samples` and `per_class`, as plain JSON-serialisable values."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n_classes = len(class_names)
    _check_shapes(y_true, y_pred=y_pred, proba=proba, n_classes=n_classes)
    if y_true.ndim == 2:
        return _multi_label_metrics(y_true, y_pred=y_pred, proba=proba, class_names=class_names)
    out: dict[str, object] = {
        name: METRICS.get(name)(y_true, y_pred=y_pred, proba=proba) for name in SINGLE_LABEL_METRICS
    }
    if n_classes == 2 and proba is not None:
        if len(np.unique(y_true)) == 2:
            out["roc_auc"] = roc_auc(y_true, y_pred=y_pred, proba=proba)
        else:
            logger.warning("roc_auc left out: the test rows hold only one class")
    out["n_samples"] = len(y_true)
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
    y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None, class_names: list[str]
) -> dict[str, object]:
    out: dict[str, object] = {}
    ap: list[float | None] = [None] * len(class_names)
    if proba is not None:
        ap = per_class_average_precision(y_true, proba)
        valid = [v for v in ap if v is not None]
        out["average_precision"] = float(np.mean(valid)) if valid else None
        # Classes without a positive test row have no AP; say how many so mAP is not misread.
        out["average_precision_excluded_classes"] = len(ap) - len(valid)
    out["f1_micro"] = f1_micro(y_true, y_pred=y_pred, proba=proba)
    out["f1_macro"] = f1_macro(y_true, y_pred=y_pred, proba=proba)
    out["n_samples"] = len(y_true)
    report: dict[str, Any] = classification_report(
        y_true,
        y_pred,
        labels=np.arange(len(class_names)),
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    out["per_class"] = {
        name: {"average_precision": ap[c], **_class_row(report[name])} for c, name in enumerate(class_names)
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


def format_metrics(metrics: dict[str, object]) -> str:
    """Headline metrics, then a per-class table, for the CLI to print."""
    lines = []
    headline = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    width = max((len(k) for k in headline), default=0)
    for key, value in headline.items():
        lines.append(f"{key:<{width}}  {_fmt(value)}")
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        columns = list(next(iter(per_class.values())))
        name_w = max(5, *(len(str(n)) for n in per_class))
        col_w = [max(9, len(c)) for c in columns]
        header = f"{'class':<{name_w}}  " + "  ".join(
            f"{c:>{w}}" for c, w in zip(columns, col_w, strict=True)
        )
        lines += ["", header, "-" * len(header)]
        for name, row in per_class.items():
            cells = "  ".join(f"{_fmt(row.get(c)):>{w}}" for c, w in zip(columns, col_w, strict=True))
            lines.append(f"{name!s:<{name_w}}  {cells}")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
