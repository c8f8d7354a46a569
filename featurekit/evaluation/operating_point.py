"""The decision threshold of a binary head, chosen on the training rows only.

Scoring FAR/FRR/HTER at a threshold picked on the test rows flatters the result (the `eer` metric is
that oracle number). Here the threshold comes from out-of-fold scores of the *training* rows: each row
is scored by a copy of the head fitted without it (stratified k-fold, group-aware when groups exist),
and the rule (equal error rate, or minimum HTER) is applied to those scores. The head itself is then
fitted on all training rows and the threshold is saved with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

from featurekit.errors import InvalidInputError
from featurekit.evaluation.binary import eer_threshold, min_hter_threshold

THRESHOLD_RULES = ("eer", "min-hter", "argmax")
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
    if len(counts) != 2 or counts.min() < 2:
        raise InvalidInputError(
            f"choosing a {rule} threshold needs at least 2 training rows of each of 2 classes, "
            f"got counts {counts.tolist()}; use threshold 'argmax'"
        )
    folds = int(min(MAX_FOLDS, counts.min()))
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
