"""`knn`: k-nearest neighbours by cosine distance; multi-label natively (one vote per label)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from featurekit.errors import InvalidInputError
from featurekit.heads._base import HEADS
from featurekit.heads._space import Choice, IntLogUniform

logger = logging.getLogger(__name__)

# k=20 with distance weighting is the usual k-NN probe of self-supervised embeddings (DINO). On
# EfficientNet-Lite0 / CIFAR-10 features (2,000 held-out rows) k=20 beat k=10 by 0.2-0.9 points at
# N=2,000 and N=4,000 training rows, k=30-50 was no better, and "distance" beat "uniform" at every k.
DEFAULT_N_NEIGHBORS = 20
WEIGHTS = ("uniform", "distance")
# metric="cosine" with algorithm="brute" rather than L2-normalising and using euclidean distance: the
# neighbours are the same (‖a-b‖² = 2-2·cos on unit vectors), but scikit-learn's cosine path (one GEMM
# per chunk) was ~2x faster than its euclidean k-NN reduction on 1280-d features (0.25 s vs 0.6 s for
# 2,000 queries against 4,000 rows, float32, 2 cores), and "distance" weights are then 1/(1-cos) rather
# than 1/chord. Trees (kd/ball) do not help in ~1000 dimensions, and brute force keeps the fitted
# model plain arrays (nothing extra for `featurekit.persist` to trust).
_METRIC = "cosine"
# Neighbour votes alone give probabilities of exactly 0 and 1 (infinite log-loss, tied rankings), so one
# pseudo-neighbour that votes the training class frequencies is added: p = (k·p_votes + prior)/(k + 1).
# It also breaks tied votes towards the more frequent class rather than the lower label.
_PRIOR_NEIGHBOURS = 1.0


@HEADS.register("knn")
class KNeighborsHead(ClassifierMixin, BaseEstimator):
    """k-nearest neighbours by cosine similarity; multi-label y gets one neighbour vote per label.

    Single-label y is (N,) class labels; multi-label y is (N, C) multi-hot, for which `predict` returns
    (N, C) multi-hot and `predict_proba` (N, C) per-label probabilities (the weighted share of the
    neighbours that have the label). The votes are shrunk towards the training class frequencies by
    one pseudo-neighbour, so a probability is 0 or 1 only for a label constant in the training data.
    With fewer training rows than `n_neighbors`, all rows are used;
    the value used is `n_neighbors_` after fitting.
    """

    featurekit_preprocessing: ClassVar[str] = (
        "l2-normalize: cosine distance, i.e. rows compared as unit vectors (row scale is ignored)"
    )
    # What `featurekit search` tries (random search with successive halving; logreg: the C sweep).
    featurekit_search_space: ClassVar[dict[str, Any]] = {
        "n_neighbors": IntLogUniform(1, 100),
        "weights": Choice(("uniform", "distance")),
    }
    featurekit_persisted_types: ClassVar[tuple[str, ...]] = (
        "featurekit.heads.knn.KNeighborsHead",
        "sklearn.neighbors._classification.KNeighborsClassifier",
    )

    def __init__(
        self,
        *,
        n_neighbors: int = DEFAULT_N_NEIGHBORS,
        weights: str = "distance",
        n_jobs: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self) -> None:
        k = self.n_neighbors
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"n_neighbors must be a positive integer, got {k!r}")
        if self.weights not in WEIGHTS:
            raise InvalidInputError(f"weights must be 'uniform' or 'distance', got {self.weights!r}")
        n_jobs = self.n_jobs
        if n_jobs is not None and (not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0):
            raise InvalidInputError(
                f"n_jobs must be None or a non-zero integer (-1 = all cores), got {n_jobs!r}"
            )

    def fit(self, X: Any, y: Any) -> KNeighborsHead:
        # copy=True: the model keeps the training rows, so it must not share the caller's array (which
        # the caller may change later; and scikit-learn computes distances of an array to itself by
        # another path, so predictions on the training array would differ after a save/load).
        X, y = validate_data(self, X, y, multi_output=True, copy=True)
        check_classification_targets(y)
        multilabel = type_of_target(y) == "multilabel-indicator"
        if not multilabel and y.ndim == 2:
            if y.shape[1] != 1:
                raise InvalidInputError(
                    f"y of shape {y.shape} is neither class labels (N,) nor multi-hot (N, C) of 0/1"
                )
            y = column_or_1d(y, warn=True)
        self._check_params()

        self.n_neighbors_ = min(int(self.n_neighbors), X.shape[0])
        if self.n_neighbors_ < self.n_neighbors:
            logger.info(
                "n_neighbors=%d but only %d training rows; using all of them",
                self.n_neighbors,
                X.shape[0],
            )
        model = KNeighborsClassifier(
            n_neighbors=self.n_neighbors_,
            weights=self.weights,
            algorithm="brute",
            metric=_METRIC,
            n_jobs=self.n_jobs,
        )
        model.fit(X, y)
        self.estimator_ = model
        self.multilabel_ = multilabel
        if multilabel:
            self.classes_ = np.arange(y.shape[1])
            self.class_prior_ = np.mean(y == 1, axis=0, dtype=np.float64)  # rate of each label
        else:
            self.classes_ = model.classes_
            _, counts = np.unique(y, return_counts=True)  # sorted, like classes_
            self.class_prior_ = counts / counts.sum()
        return self

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(validate_data(self, X, reset=False))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities; (N, C) per-label probabilities for multi-label."""
        Xc = self._check_X(X)
        votes = self.estimator_.predict_proba(Xc)
        if self.multilabel_:
            # One (N, 1 or 2) array per label; a label constant in the training data has one class only.
            columns = []
            for label_classes, p in zip(self.estimator_.classes_, votes, strict=True):
                positive = np.flatnonzero(label_classes == 1)
                columns.append(p[:, positive[0]] if positive.size else np.zeros(p.shape[0]))
            votes = np.column_stack(columns)
        k = self.n_neighbors_
        return np.asarray(
            (k * np.asarray(votes) + _PRIOR_NEIGHBOURS * self.class_prior_) / (k + _PRIOR_NEIGHBOURS)
        )

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,) of highest probability; multi-hot (N, C) int64 for multi-label (above 0.5)."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba > 0.5).astype(np.int64)
        return np.asarray(self.classes_[proba.argmax(axis=1)])
