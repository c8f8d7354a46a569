"""`logreg`: standardised features + L2 logistic regression (lbfgs); one-vs-rest for multi-label."""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from featurekit.errors import InvalidInputError
from featurekit.heads._base import HEADS
from featurekit.heads._space import LogUniform

logger = logging.getLogger(__name__)

# scikit-learn minimises C·Σ loss + ½‖w‖², so a fixed C regularises 100× less at N=20,000 than at N=200.
# Standardised CNN embeddings (1000-2000 correlated dimensions) want a roughly constant *per-sample*
# penalty λ = 1/(C·N) instead: on EfficientNet-Lite0 / CIFAR-10 features the best λ was 0.02-0.1 from
# N=2,000 to N=16,000 (docs/results.md), so C="auto" means C = 1/(AUTO_PENALTY·N).
DEFAULT_C = "auto"
AUTO_PENALTY = 0.05
_TOL = 1e-4  # lbfgs default; looser tolerances change predictions visibly on small data


@HEADS.register("logreg")
class LogisticRegressionHead(ClassifierMixin, BaseEstimator):
    """Logistic regression (L2, lbfgs) on standardised features; one-vs-rest for multi-label y.

    Single-label y is (N,) class labels; multi-label y is (N, C) multi-hot, for which `predict` returns
    (N, C) multi-hot and `predict_proba` (N, C) per-class probabilities. A label that is constant in the
    training data gets a constant prediction instead of an error.

    C="auto" (the default) sets C = 1/(AUTO_PENALTY·n_samples): a per-sample L2 penalty that stays
    right as the training set grows; the value used is `C_` after fitting.
    """

    featurekit_preprocessing: ClassVar[str] = (
        "standardize: StandardScaler fitted on the training rows (standardize=False turns it off)"
    )
    # What `featurekit search` tries (random search with successive halving; logreg: the C sweep).
    featurekit_search_space: ClassVar[dict[str, Any]] = {"C": LogUniform(1e-6, 1e6)}
    featurekit_persisted_types: ClassVar[tuple[str, ...]] = (
        "featurekit.heads.logreg.LogisticRegressionHead",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.multiclass.OneVsRestClassifier",
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelBinarizer",
    )

    def __init__(
        self,
        *,
        C: float | str = DEFAULT_C,
        class_weight: str | dict[Any, float] | None = None,
        max_iter: int = 1000,
        standardize: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
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
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise InvalidInputError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        cw = self.class_weight
        if cw is not None and cw != "balanced" and not isinstance(cw, dict):
            raise InvalidInputError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        if multilabel and isinstance(cw, dict):
            # Each one-vs-rest problem has classes {0, 1}, so a per-class dict has no clear meaning.
            raise InvalidInputError(
                "class_weight as a dict is not supported for multi-label y; use 'balanced' or None"
            )

    def fit(self, X: Any, y: Any) -> LogisticRegressionHead:
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
        base = LogisticRegression(
            C=self.C_,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            tol=_TOL,
            solver="lbfgs",
            random_state=self.random_state,
        )
        self.multilabel_ = multilabel
        model: LogisticRegression | OneVsRestClassifier = OneVsRestClassifier(base) if multilabel else base
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            warnings.filterwarnings("always", message=r"Label .* is present in all training examples")
            model.fit(X, y)
        self._log_fit_warnings(caught)
        self.estimator_ = model
        self.classes_ = np.arange(y.shape[1]) if multilabel else model.classes_
        # lbfgs iterations per fitted problem (constant one-vs-rest labels need none)
        fitted = model.estimators_ if isinstance(model, OneVsRestClassifier) else [model]
        iters = [int(n) for e in fitted if hasattr(e, "n_iter_") for n in np.ravel(e.n_iter_)]
        self.n_iter_ = np.asarray(iters, dtype=np.int32)
        return self

    def _log_fit_warnings(self, caught: list[warnings.WarningMessage]) -> None:
        # One log line instead of one warning per one-vs-rest problem.
        constant = [w for w in caught if "present in all training examples" in str(w.message)]
        unconverged = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        if constant:
            logger.info(
                "%d label(s) constant in the training data; predicting them as constant", len(constant)
            )
        if unconverged:
            logger.warning(
                "lbfgs did not converge within max_iter=%d for %d problem(s); raise max_iter or lower C",
                self.max_iter,
                len(unconverged),
            )
        for w in caught:
            if w not in constant and w not in unconverged:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return X if self.scaler_ is None else self.scaler_.transform(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """(N,) for binary, (N, K) for multiclass, (N, C) for multi-label."""
        Xt = self._transform(X)
        return np.asarray(self.estimator_.decision_function(Xt))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities; (N, C) per-class probabilities for multi-label."""
        Xt = self._transform(X)
        return np.asarray(self.estimator_.predict_proba(Xt))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,); multi-hot (N, C) int64 for multi-label."""
        Xt = self._transform(X)
        pred = self.estimator_.predict(Xt)
        return np.asarray(pred, dtype=np.int64) if self.multilabel_ else np.asarray(pred)
