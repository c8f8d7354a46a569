"""Random under- and over-sampling of the training rows, for imbalanced single-label tasks.

`resample_rows` picks the rows (numpy only, seeded); `ResampledHead` wraps any head so that every fit
(including each fold of the out-of-fold threshold choice) resamples only the rows it is given, and the
rows it is scored on stay as they are. Validation and test rows are never resampled.

numpy rather than imbalanced-learn: the two random samplers are a few lines each, and
imbalanced-learn pins narrow scikit-learn ranges, which would hold back scikit-learn for every user.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)

RESAMPLE_STRATEGIES = ("none", "under", "over")


def resample_rows(y: np.ndarray, *, strategy: str, random_state: int | None = 0) -> np.ndarray:
    """Sorted row indices of a class-balanced sample of `y` (N,) class labels.

    - "under": every class is cut to the size of the smallest one, rows drawn without replacement.
    - "over": every class is raised to the size of the largest one: all its rows, plus rows drawn
      with replacement (so some rows appear more than once).
    - "none": every row once.
    """
    if strategy not in RESAMPLE_STRATEGIES:
        raise InvalidInputError(
            f"resample strategy {strategy!r} is not one of {', '.join(RESAMPLE_STRATEGIES)}"
        )
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidInputError(
            f"resampling balances single-label classes; y of shape {y.shape} is multi-label "
            "(use class_weight='balanced' or per-class thresholds instead)"
        )
    rows = np.arange(len(y))
    if strategy == "none" or len(y) == 0:
        return rows
    rng = np.random.default_rng(random_state)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    target = int(np.min(counts) if strategy == "under" else np.max(counts))
    picked = []
    for k in range(len(classes)):
        members = rows[inverse == k]
        if strategy == "under":
            picked.append(rng.choice(members, size=target, replace=False))
        else:
            extra = rng.choice(members, size=target - len(members), replace=True)
            picked += [members, extra]
    return np.sort(np.concatenate(picked))


class ResampledHead(ClassifierMixin, BaseEstimator):
    """`estimator` fitted on a randomly under- or over-sampled copy of the rows given to `fit`.

    Predictions are the wrapped head's (`estimator_`): resampling changes only what it learns from.
    """

    def __init__(self, estimator: Any, *, strategy: str = "under", random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.strategy = strategy
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> ResampledHead:
        y = np.asarray(y)
        rows = resample_rows(y, strategy=self.strategy, random_state=self.random_state)
        X = np.asarray(X)
        self.estimator_ = clone(self.estimator).fit(X[rows], y[rows])
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        self.n_resampled_ = len(rows)
        logger.info("%s-sampled %d training rows to %d", self.strategy, len(y), len(rows))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict(X))
