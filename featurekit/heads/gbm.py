"""`lightgbm`: gradient-boosted trees (LightGBM) on raw features; one-vs-rest for multi-label.

The module is not called `lightgbm.py` so that `import lightgbm` inside it gets the package. LightGBM is
imported inside `fit`, so `import featurekit.heads` stays light and works without it installed.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from featurekit.errors import InvalidInputError, MissingDependencyError
from featurekit.heads._base import HEADS
from featurekit.heads._holdout import MIN_HELD_OUT_ROWS, held_out_split
from featurekit.heads._space import IntLogUniform, LogUniform, Uniform

logger = logging.getLogger(__name__)

# Defaults for ~1000-d CNN embeddings (dense, correlated, each dimension weak on its own):
# - colsample_bytree=0.3: each tree sees 30% of the dimensions; many are near-duplicates, so this loses
#   little and decorrelates the trees. On EfficientNet-Lite0 / CIFAR-10 features (2,000 training rows,
#   2,000 held out, 2 cores) it gave 0.709 accuracy in 26 s vs 0.710 in 59 s with all columns.
# - learning_rate=0.05 with 300 rounds: a slow rate that does not need early stopping to avoid
#   overfitting a few thousand rows; multiclass grows one tree per class per round, so this is
#   3,000 trees for 10 classes.
# - num_leaves=31 and min_child_samples=20 are LightGBM's own defaults; reg_lambda=1 adds a light L2
#   on leaf values, subsample=0.8 bags rows each round (both are mild regularisers for small N).
DEFAULT_N_ESTIMATORS = 300
DEFAULT_LEARNING_RATE = 0.05
DEFAULT_NUM_LEAVES = 31
DEFAULT_MIN_CHILD_SAMPLES = 20
DEFAULT_COLSAMPLE_BYTREE = 0.3
DEFAULT_SUBSAMPLE = 0.8
DEFAULT_REG_LAMBDA = 1.0
# Early stopping is off by default: with the defaults above the 300 slow rounds do not overfit 16,000
# rows of CIFAR-10 Lite0 features, and holding out a tenth cost a point of accuracy (0.7695 against
# 0.7792, docs/results.md). It pays with more rounds or a faster rate. "auto" turns it on from 10,000
# training rows, as scikit-learn's HistGradientBoostingClassifier does. A fit then stops once 20 rounds
# in a row have not lowered the held-out log-loss, and keeps the best round.
AUTO_EARLY_STOPPING_ROWS = 10_000
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_N_ITER_NO_CHANGE = 20


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


@HEADS.register("lightgbm")
class LightGBMHead(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees (LightGBM) on the raw features; one-vs-rest for multi-label y.

    Single-label y is (N,) class labels; multi-label y is (N, C) multi-hot, for which `predict` returns
    (N, C) multi-hot and `predict_proba` (N, C) per-label probabilities. A label that is constant in the
    training data gets a constant prediction. `n_jobs=None` lets LightGBM use every core (OpenMP).

    Imbalance: `class_weight="balanced"` (any number of classes), or LightGBM's own binary options
    `is_unbalance=True` (weights the positive class by negatives/positives) or `scale_pos_weight=w`
    (a fixed positive-class weight), e.g. `featurekit fit CACHE --head lightgbm --param is_unbalance=true`.
    LightGBM allows at most one of the three; the two binary options apply to 2-class y and to each
    one-vs-rest problem of multi-label y, and are refused for multiclass y (use class_weight there).

    Early stopping (`early_stopping=True`, or "auto": from 10,000 training rows; off by default, see
    above): a stratified
    `validation_fraction` of the rows is held out (of each label's problem, for multi-label), and
    boosting stops once `n_iter_no_change` rounds in a row have not lowered its log-loss; the best
    round is kept, and `n_estimators_` says how many rounds that was (a list, one per label, for
    multi-label). The held-out rows come from the rows `fit` is given, never from a search's
    validation or test split.

    Needs the optional `lightgbm` package (`pip install lightgbm`). A fitted head is saved by skops as
    a LightGBM model string inside `lightgbm.basic.Booster`'s state: text, parsed on load, no pickle.
    """

    featurekit_preprocessing: ClassVar[str] = "none: trees are invariant to feature scale"
    # What `featurekit search` tries (random search with successive halving; logreg: the C sweep).
    featurekit_search_space: ClassVar[dict[str, Any]] = {
        "learning_rate": LogUniform(0.02, 0.3),
        "num_leaves": IntLogUniform(4, 128),
        "min_child_samples": IntLogUniform(2, 100),
        "colsample_bytree": Uniform(0.1, 1.0),
        "reg_lambda": LogUniform(1e-3, 10.0),
    }
    featurekit_persisted_types: ClassVar[tuple[str, ...]] = (
        "featurekit.heads.gbm.LightGBMHead",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.basic.Booster",  # its state is the model as LightGBM's text format, parsed on load
        "collections.OrderedDict",  # Booster.best_score's values
        "collections.defaultdict",  # Booster.best_score itself, after early stopping
        "featurekit.heads.gbm.EarlyStoppedLGBM",
        "sklearn.multiclass.OneVsRestClassifier",
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.preprocessing._label.LabelBinarizer",
    )

    def __init__(
        self,
        *,
        n_estimators: int = DEFAULT_N_ESTIMATORS,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        num_leaves: int = DEFAULT_NUM_LEAVES,
        min_child_samples: int = DEFAULT_MIN_CHILD_SAMPLES,
        colsample_bytree: float = DEFAULT_COLSAMPLE_BYTREE,
        subsample: float = DEFAULT_SUBSAMPLE,
        reg_lambda: float = DEFAULT_REG_LAMBDA,
        class_weight: str | dict[Any, float] | None = None,
        is_unbalance: bool = False,
        scale_pos_weight: float = 1.0,
        early_stopping: bool | str = False,
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        n_iter_no_change: int = DEFAULT_N_ITER_NO_CHANGE,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.class_weight = class_weight
        self.is_unbalance = is_unbalance
        self.scale_pos_weight = scale_pos_weight
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.n_jobs = n_jobs
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self, *, multilabel: bool) -> None:
        if not _is_int(self.n_estimators) or self.n_estimators < 1:
            raise InvalidInputError(f"n_estimators must be a positive integer, got {self.n_estimators!r}")
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            raise InvalidInputError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not _is_int(self.num_leaves) or self.num_leaves < 2:
            raise InvalidInputError(f"num_leaves must be an integer of at least 2, got {self.num_leaves!r}")
        if not _is_int(self.min_child_samples) or self.min_child_samples < 1:
            raise InvalidInputError(
                f"min_child_samples must be a positive integer, got {self.min_child_samples!r}"
            )
        for name in ("colsample_bytree", "subsample"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= 1:
                raise InvalidInputError(f"{name} must be a fraction in (0, 1], got {value!r}")
        if not _is_number(self.reg_lambda) or not self.reg_lambda >= 0:
            raise InvalidInputError(f"reg_lambda must be a number >= 0, got {self.reg_lambda!r}")
        if not isinstance(self.early_stopping, bool | np.bool_) and self.early_stopping != "auto":
            raise InvalidInputError(
                f"early_stopping must be true, false or 'auto', got {self.early_stopping!r}"
            )
        fraction = self.validation_fraction
        if not _is_number(fraction) or not 0 < fraction < 1:
            raise InvalidInputError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        if not _is_int(self.n_iter_no_change) or self.n_iter_no_change < 1:
            raise InvalidInputError(
                f"n_iter_no_change must be a positive integer, got {self.n_iter_no_change!r}"
            )
        n_jobs = self.n_jobs
        if n_jobs is not None and (not _is_int(n_jobs) or n_jobs == 0):
            raise InvalidInputError(
                f"n_jobs must be None or a non-zero integer (-1 = all cores), got {n_jobs!r}"
            )
        cw = self.class_weight
        if cw is not None and cw != "balanced" and not isinstance(cw, dict):
            raise InvalidInputError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        if multilabel and isinstance(cw, dict):
            # Each one-vs-rest problem has classes {0, 1}, so a per-class dict has no clear meaning.
            raise InvalidInputError(
                "class_weight as a dict is not supported for multi-label y; use 'balanced' or None"
            )
        if not isinstance(self.is_unbalance, bool | np.bool_):
            raise InvalidInputError(f"is_unbalance must be true or false, got {self.is_unbalance!r}")
        spw = self.scale_pos_weight
        if not _is_number(spw) or not spw > 0:
            raise InvalidInputError(f"scale_pos_weight must be a positive number, got {spw!r}")
        chosen = [
            name
            for name, on in (
                ("class_weight", cw is not None),
                ("is_unbalance", bool(self.is_unbalance)),
                ("scale_pos_weight", spw != 1),
            )
            if on
        ]
        if len(chosen) > 1:
            raise InvalidInputError(
                f"{' and '.join(chosen)} both reweight the classes; LightGBM allows only one of "
                "class_weight, is_unbalance and scale_pos_weight"
            )

    def _check_binary_options(self, n_classes: int) -> None:
        if n_classes > 2 and (self.is_unbalance or self.scale_pos_weight != 1):
            raise InvalidInputError(
                f"is_unbalance and scale_pos_weight are LightGBM's binary options, but y has {n_classes} "
                "classes; use class_weight='balanced' (--class-weight balanced) instead"
            )

    def _make_lgbm(self) -> Any:
        try:
            import lightgbm
        except ImportError as exc:
            raise MissingDependencyError(
                "the 'lightgbm' head needs the lightgbm package: pip install lightgbm"
            ) from exc
        return lightgbm.LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            colsample_bytree=self.colsample_bytree,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0,  # LightGBM bags rows only with a frequency
            reg_lambda=self.reg_lambda,
            class_weight=self.class_weight,
            is_unbalance=bool(self.is_unbalance),
            scale_pos_weight=float(self.scale_pos_weight),
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            verbose=-1,
        )

    def fit(self, X: Any, y: Any) -> LightGBMHead:
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
        if not multilabel and np.unique(y).size < 2:
            only = np.unique(y).tolist()[0]  # a plain Python label reads better than np.int64(5)
            raise InvalidInputError(
                f"y has only one class ({only!r}); the lightgbm head needs at least 2 classes"
            )
        if not multilabel:
            self._check_binary_options(np.unique(y).size)

        base = self._make_lgbm()
        if self._stops_early(len(y)):
            base = EarlyStoppedLGBM(
                base,
                validation_fraction=float(self.validation_fraction),
                n_iter_no_change=int(self.n_iter_no_change),
                random_state=self.random_state,
            )
        self.multilabel_ = multilabel
        model = OneVsRestClassifier(base) if multilabel else base
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", message=r"Label .* is present in all training examples")
            model.fit(X, y)
        constant = [w for w in caught if "present in all training examples" in str(w.message)]
        if constant:
            logger.info(
                "%d label(s) constant in the training data; predicting them as constant", len(constant)
            )
        for w in caught:
            if w not in constant:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.estimator_ = model
        self.classes_ = np.arange(y.shape[1]) if multilabel else model.classes_
        rounds = [_rounds(e) for e in model.estimators_] if multilabel else _rounds(model)
        self.n_estimators_: int | list[int] = rounds
        if isinstance(base, EarlyStoppedLGBM):
            logger.info("lightgbm: early stopping kept %s of %d rounds", rounds, self.n_estimators)
        return self

    def _stops_early(self, n_rows: int) -> bool:
        if self.early_stopping == "auto":
            return n_rows >= AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(validate_data(self, X, reset=False))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities; (N, C) per-label probabilities for multi-label."""
        Xc = self._check_X(X)
        return np.asarray(self.estimator_.predict_proba(Xc))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,); multi-hot (N, C) int64 for multi-label (probability above 0.5)."""
        Xc = self._check_X(X)
        pred = self.estimator_.predict(Xc)
        return np.asarray(pred, dtype=np.int64) if self.multilabel_ else np.asarray(pred)


class EarlyStoppedLGBM(ClassifierMixin, BaseEstimator):
    """`lgbm` (an unfitted LGBMClassifier) boosted with early stopping on a held-out share of the
    rows it is fitted on: stratified by class where every class has 2 rows, else at random."""

    def __init__(
        self,
        lgbm: Any = None,
        *,
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        n_iter_no_change: int = DEFAULT_N_ITER_NO_CHANGE,
        random_state: int | None = None,
    ) -> None:
        self.lgbm = lgbm
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> EarlyStoppedLGBM:
        import lightgbm

        model = clone(self.lgbm)
        split = None
        if len(y) - round(self.validation_fraction * len(y)) >= MIN_HELD_OUT_ROWS:  # rows left to learn
            split = held_out_split(len(y), self.validation_fraction, strata=y, random_state=self.random_state)
        if split is None:
            logger.info("lightgbm: %d rows, too few to hold out a share; no early stopping", len(y))
            self.estimator_ = model.fit(X, y)
        else:
            train, valid = split
            stop = lightgbm.early_stopping(self.n_iter_no_change, first_metric_only=True, verbose=False)
            # LightGBM 4.6 renamed eval_set to eval_X/eval_y (and warns about the old name).
            if "eval_X" in inspect.signature(model.fit).parameters:
                held_out: dict[str, Any] = {"eval_X": (X[valid],), "eval_y": (y[valid],)}
            else:
                held_out = {"eval_set": [(X[valid], y[valid])]}
            self.estimator_ = model.fit(X[train], y[train], callbacks=[stop], **held_out)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict_proba(X))  # at the best round when it stopped early

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict(X))


def _rounds(model: Any) -> int:
    """Boosting rounds a fitted LGBMClassifier (or EarlyStoppedLGBM, or constant predictor) uses."""
    model = getattr(model, "estimator_", model)
    best = getattr(model, "best_iteration_", None)
    if best:  # LightGBM sets it (1-based) only when early stopping ran
        return int(best)
    booster = getattr(model, "booster_", None)
    return int(booster.current_iteration()) if booster is not None else 0
