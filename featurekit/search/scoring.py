"""The validation score a search maximises: a METRICS name whose higher values are better."""

from __future__ import annotations

import numpy as np

from featurekit.errors import InvalidInputError
from featurekit.evaluation import METRICS, expand_proba

# Metrics a search may maximise (error rates such as hter or log_loss would be minimised: use
# neg_log_loss, or pick the operating point afterwards with `fit --threshold`).
MAXIMISED = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_micro",
    "top_5_accuracy",
    "roc_auc",
    "average_precision",
    "map_voc11",
    "neg_log_loss",
)


def default_scoring(*, multilabel: bool) -> str:
    """accuracy for single-label tasks (the linear-probe protocol's score), macro mAP for multi-label."""
    return "average_precision" if multilabel else "accuracy"


def check_scoring(scoring: str, *, multilabel: bool) -> str:
    if scoring not in MAXIMISED:
        raise InvalidInputError(
            f"scoring {scoring!r} cannot be maximised by a search; use one of {', '.join(MAXIMISED)}"
        )
    if multilabel and scoring in ("accuracy", "balanced_accuracy", "top_5_accuracy", "neg_log_loss"):
        raise InvalidInputError(
            f"scoring {scoring!r} is for single-label tasks; multi-label caches use average_precision, "
            "map_voc11, roc_auc, f1_macro or f1_micro"
        )
    return scoring


def validation_score(
    scoring: str, y_true: np.ndarray, proba: np.ndarray, *, classes: np.ndarray | None, n_classes: int
) -> float:
    """`scoring` of probabilities: (N, len(classes)) single-label, spread to n_classes; (N, C) multi-label."""
    proba = np.asarray(proba, dtype=np.float64)
    if y_true.ndim == 1:
        if classes is not None:
            proba = expand_proba(proba, classes=classes, n_classes=n_classes)
        y_pred = np.argmax(proba, axis=1)
    else:
        y_pred = (proba >= 0.5).astype(np.int64)
    return float(METRICS.get(scoring)(y_true, y_pred=y_pred, proba=proba))
