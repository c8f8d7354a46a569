"""Decision thresholds chosen on the training rows only: one for a binary head, one per label for a
multi-label head.

Scoring FAR/FRR/HTER at a threshold picked on the test rows flatters the result (the `eer` metric is
that oracle number). Here the threshold comes from out-of-fold scores of the *training* rows: each row
is scored by a copy of the head fitted without it (stratified k-fold, group-aware when groups exist),
and the rule (equal error rate, or minimum HTER) is applied to those scores. The head itself is then
fitted on all training rows and the threshold is saved with it.

Multi-label heads get one threshold per label the same way (k-fold, group-aware when groups exist):
the one that maximises that label's F1 on the out-of-fold scores ("f1"), or 0.5 for every label ("0.5").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_predict,
)

from featurekit.errors import InvalidInputError
from featurekit.evaluation.binary import eer_threshold, min_hter_threshold

THRESHOLD_RULES = ("eer", "min-hter", "argmax")
LABEL_THRESHOLD_RULES = ("f1", "0.5")
DEFAULT_LABEL_THRESHOLD = 0.5
# A label positive in a single training row keeps 0.5: that row's out-of-fold score comes from a model
# that never saw a positive, so "its" best threshold is noise (on COCO-128 such labels drove the
# threshold to ~0 and predicted the label everywhere). From 2 positives on, the threshold is tuned.
MIN_POSITIVES_TO_TUNE = 2
MAX_FOLDS = 5


def choose_threshold(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    rule: str,
    groups: np.ndarray | None = None,
    random_state: int = 0,
) -> float | None:
    """The positive-class (label 1) score threshold by `rule`; None for "argmax" (the head's own)."""
    if rule not in THRESHOLD_RULES:
        raise InvalidInputError(f"threshold rule {rule!r} is not one of {', '.join(THRESHOLD_RULES)}")
    if rule == "argmax":
        return None
    y = np.asarray(y)
    counts = np.bincount(y, minlength=2)
    if len(counts) != 2 or np.min(counts) < 2:
        raise InvalidInputError(
            f"choosing a {rule} threshold needs at least 2 training rows of each of 2 classes, "
            f"got counts {counts.tolist()}; use threshold 'argmax'"
        )
    folds = min(MAX_FOLDS, int(np.min(counts)))
    if groups is not None:
        folds = min(folds, len(np.unique(groups)))
        cv: Any = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=random_state)
    else:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    if folds < 2:
        raise InvalidInputError("too few training groups to choose a threshold; use threshold 'argmax'")
    proba = cross_val_predict(clone(estimator), X, y, cv=cv, groups=groups, method="predict_proba")
    scores = proba[:, 1]
    return float(eer_threshold(y, scores) if rule == "eer" else min_hter_threshold(y, scores))


def choose_label_thresholds(
    estimator: Any,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    rule: str,
    groups: np.ndarray | None = None,
    random_state: int = 0,
) -> list[float]:
    """One score threshold per label of multi-hot `Y` (N, C), by `rule` ("f1" or "0.5").

    "f1": out-of-fold probabilities of the training rows (k = min(5, rows or groups) folds), then for
    each label the threshold with the best F1 (`best_f1_threshold`). A label with fewer than
    MIN_POSITIVES_TO_TUNE positive rows, or no negative one, keeps 0.5. "0.5": 0.5 for every label.
    """
    if rule not in LABEL_THRESHOLD_RULES:
        raise InvalidInputError(
            f"label threshold rule {rule!r} is not one of {', '.join(LABEL_THRESHOLD_RULES)}"
        )
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise InvalidInputError(f"per-label thresholds need multi-hot Y (N, C), got shape {Y.shape}")
    n_labels = Y.shape[1]
    if rule == "0.5":
        return [DEFAULT_LABEL_THRESHOLD] * n_labels
    units = len(np.unique(groups)) if groups is not None else len(Y)
    folds = int(min(MAX_FOLDS, units))
    if folds < 2:
        raise InvalidInputError(
            f"choosing per-label thresholds needs at least 2 training rows (or groups), got {units}; "
            "use label thresholds '0.5'"
        )
    cv: Any = (
        GroupKFold(n_splits=folds)
        if groups is not None
        else KFold(n_splits=folds, shuffle=True, random_state=random_state)
    )
    scores = np.zeros(Y.shape, dtype=np.float64)
    for train, valid in cv.split(X, Y, groups):
        head = clone(estimator).fit(X[train], Y[train])
        scores[valid] = np.asarray(head.predict_proba(X[valid]), dtype=np.float64)
    return [
        best_f1_threshold(Y[:, c], scores[:, c])
        if np.sum(Y[:, c] > 0) >= MIN_POSITIVES_TO_TUNE
        else DEFAULT_LABEL_THRESHOLD
        for c in range(n_labels)
    ]


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold t (predict the label when score >= t) that maximises F1 on these rows.

    Candidates are the distinct scores; among equally good ones the largest is taken (fewest false
    positives), and t is then moved halfway down to the next lower score, so that a new row scored just
    below the lowest accepted training score is treated like it. 0.5 when y_true is constant.
    """
    y = np.asarray(y_true) > 0
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        return DEFAULT_LABEL_THRESHOLD
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[: len(thresholds)], recall[: len(thresholds)]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[-1])  # thresholds increase: the last is largest
    lower = s[s < thresholds[best]]
    return float((thresholds[best] + lower.max()) / 2 if lower.size else thresholds[best])
