"""`linear-svm`: standardised features + linear SVM, sigmoid-calibrated; one-vs-rest for multi-label."""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils import Tags
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from featurekit.errors import InvalidInputError
from featurekit.heads._base import HEADS
from featurekit.heads._space import LogUniform

logger = logging.getLogger(__name__)

# LinearSVC minimises ½‖w‖² + C·Σ loss like LogisticRegression, so a fixed C regularises 100× less at
# N=20,000 than at N=200. As in `logreg`, C="auto" holds the per-sample penalty λ = 1/(C·N) constant:
# C = 1/(AUTO_PENALTY·N). The squared hinge wants a much stronger penalty than the logistic loss: on
# EfficientNet-Lite0 / CIFAR-10 features (2,000 held-out rows) held-out accuracy by λ was
#   N=2,000: λ=0.01 0.643 · 0.1 0.675 · 0.3 0.704 · 1 0.717 · 3 0.721 · 10 0.706 · 30 0.690
#   N=4,000: λ=0.01 0.680 · 0.03 0.699 · 1 0.743 · 3 0.732
# (logreg's default: 0.730 and 0.758), and small λ also converged slowly (70 s vs 6 s at N=2,000).
DEFAULT_C = "auto"
AUTO_PENALTY = 1.0
DEFAULT_CV = 3


@HEADS.register("linear-svm")
class LinearSVMHead(ClassifierMixin, BaseEstimator):
    """Linear SVM (squared hinge, liblinear) on standardised features, sigmoid-calibrated probabilities.

    An SVM has no probabilities of its own: `CalibratedClassifierCV(method="sigmoid", cv=cv)` fits
    Platt scaling on out-of-fold decision values (cv SVMs) and predicts with one SVM fitted on all rows,
    so every class (and, for multi-label, every label's positives and negatives) needs at least `cv`
    training rows; a label with fewer is calibrated with fewer folds (2 at least) or, with a single
    positive row, predicted as its training rate. Single-label y is (N,) class labels; multi-label y
    is (N, C) multi-hot, for which `predict` returns (N, C) multi-hot and `predict_proba` (N, C)
    per-label probabilities.

    `class_weight` reweights the rows for both the SVM and the calibration, so "balanced" shifts the
    predictions towards rare classes (weighting the SVM alone would be undone by the calibration).
    C="auto" (the default) sets C = 1/(AUTO_PENALTY·n_samples); the value used is `C_` after fitting.
    """

    featurekit_preprocessing: ClassVar[str] = (
        "standardize: StandardScaler fitted on the training rows (standardize=False turns it off)"
    )
    # What `featurekit search` tries (random search with successive halving; logreg: the C sweep).
    featurekit_search_space: ClassVar[dict[str, Any]] = {"C": LogUniform(1e-6, 1e2)}
    featurekit_persisted_types: ClassVar[tuple[str, ...]] = (
        "featurekit.heads.linear_svm.LinearSVMHead",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.preprocessing._data.StandardScaler",
    )

    def __init__(
        self,
        *,
        C: float | str = DEFAULT_C,
        class_weight: str | dict[Any, float] | None = None,
        cv: int = DEFAULT_CV,
        max_iter: int = 1000,
        standardize: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.cv = cv
        self.max_iter = max_iter
        self.standardize = standardize
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self, *, multilabel: bool) -> None:
        C = self.C
        if not (C == "auto" or (isinstance(C, int | float) and not isinstance(C, bool) and C > 0)):
            raise InvalidInputError(f"C must be a positive number or 'auto', got {self.C!r}")
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise InvalidInputError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not isinstance(self.cv, int) or isinstance(self.cv, bool) or self.cv < 2:
            raise InvalidInputError(
                f"cv must be an integer of at least 2 (calibration folds), got {self.cv!r}"
            )
        cw = self.class_weight
        if cw is not None and cw != "balanced" and not isinstance(cw, dict):
            raise InvalidInputError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        if multilabel and isinstance(cw, dict):
            # Each one-vs-rest problem has classes {0, 1}, so a per-class dict has no clear meaning.
            raise InvalidInputError(
                "class_weight as a dict is not supported for multi-label y; use 'balanced' or None"
            )

    def fit(self, X: Any, y: Any) -> LinearSVMHead:
        X, y = validate_data(self, X, y, multi_output=True)
        check_classification_targets(y)
        multilabel = type_of_target(y) == "multilabel-indicator"
        if not multilabel and y.ndim == 2:
            if y.shape[1] != 1:
                raise InvalidInputError(
                    f"y of shape {y.shape} is neither class labels (N,) nor multi-hot (N, C) of 0/1"
                )
            y = column_or_1d(y, warn=True)
        self._check_params(multilabel=multilabel)

        if self.standardize:
            self.scaler_: StandardScaler | None = StandardScaler().fit(X)
            X = self.scaler_.transform(X)
        else:
            self.scaler_ = None
        # The C actually used: "auto" resolved against the number of training rows.
        self.C_ = 1.0 / (AUTO_PENALTY * X.shape[0]) if self.C == "auto" else float(self.C)
        self.multilabel_ = multilabel
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if multilabel:
                self._fit_multilabel(X, y)
            else:
                self._fit_single_label(X, y)
        unconverged = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        if unconverged:
            logger.warning(
                "liblinear did not converge within max_iter=%d in %d fit(s); raise max_iter or lower C",
                self.max_iter,
                len(unconverged),
            )
        for w in caught:
            if w not in unconverged:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        # liblinear iterations of the predicting SVM of each fitted problem (constant labels need none)
        fitted = self.estimators_ if multilabel else [self.estimator_]
        self.n_iter_ = np.asarray(
            [int(e.calibrated_classifiers_[0].estimator.n_iter_) for e in fitted if not isinstance(e, float)],
            dtype=np.int32,
        )
        return self

    def _calibrated_svm(self, cv: int) -> CalibratedClassifierCV:
        svm = LinearSVC(C=self.C_, max_iter=self.max_iter, random_state=self.random_state)
        # ensemble=False: one SVM fitted on all rows predicts, calibrated on out-of-fold decisions;
        # prediction costs one SVM instead of cv of them.
        return CalibratedClassifierCV(svm, method="sigmoid", cv=cv, ensemble=False)

    def _sample_weight(self, y: np.ndarray) -> np.ndarray | None:
        return None if self.class_weight is None else compute_sample_weight(self.class_weight, y)

    def _fit_single_label(self, X: np.ndarray, y: np.ndarray) -> None:
        classes, counts = np.unique(y, return_counts=True)
        classes = classes.tolist()  # plain Python labels read better in messages than np.int64(2)
        if len(classes) < 2:
            raise InvalidInputError(
                f"y has only one class ({classes[0]!r}); linear-svm needs at least 2 classes"
            )
        rarest = int(np.argmin(counts))
        if counts[rarest] < 2:
            raise InvalidInputError(
                f"class {classes[rarest]!r} has 1 training row; linear-svm calibrates its probabilities "
                "by cross-validation and needs at least 2 rows of every class: drop the class or use logreg"
            )
        cv = min(self.cv, int(counts[rarest]))
        if cv < self.cv:
            logger.warning(
                "class %r has only %d training rows; calibrating with cv=%d instead of %d",
                classes[rarest],
                counts[rarest],
                cv,
                self.cv,
            )
        self.estimator_ = self._calibrated_svm(cv).fit(X, y, sample_weight=self._sample_weight(y))
        self.classes_ = self.estimator_.classes_

    def _fit_multilabel(self, X: np.ndarray, Y: np.ndarray) -> None:
        # One-vs-rest by hand rather than OneVsRestClassifier: class_weight="balanced" must become
        # per-label sample weights (passed to the calibration too), and rare labels need fewer folds.
        estimators: list[CalibratedClassifierCV | float] = []
        constant, fewer_folds = 0, 0
        for j in range(Y.shape[1]):
            label = (Y[:, j] == 1).astype(np.int64)
            rarest = int(min(label.sum(), label.size - label.sum()))
            if rarest < 2:  # constant, or one row on one side: predict the training rate
                estimators.append(float(label.mean()))
                constant += 1
                continue
            cv = min(self.cv, rarest)
            fewer_folds += cv < self.cv
            estimators.append(
                self._calibrated_svm(cv).fit(X, label, sample_weight=self._sample_weight(label))
            )
        if constant:
            logger.info(
                "%d label(s) with fewer than 2 positive or negative rows; predicting their training rate",
                constant,
            )
        if fewer_folds:
            logger.warning("%d rare label(s) calibrated with fewer than cv=%d folds", fewer_folds, self.cv)
        self.estimators_ = estimators
        self.classes_ = np.arange(Y.shape[1])

    def _transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(X if self.scaler_ is None else self.scaler_.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities; (N, C) per-label probabilities for multi-label."""
        Xt = self._transform(X)
        if not self.multilabel_:
            return np.asarray(self.estimator_.predict_proba(Xt))
        columns = [
            np.full(Xt.shape[0], e) if isinstance(e, float) else e.predict_proba(Xt)[:, 1]
            for e in self.estimators_
        ]
        return np.column_stack(columns)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,) of highest probability; multi-hot (N, C) int64 for multi-label (above 0.5)."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba > 0.5).astype(np.int64)
        return np.asarray(self.classes_[proba.argmax(axis=1)])
