"""`ensemble`: several heads combined by soft vote, hard vote (declared tie-breaker) or stacking.

Members are head names (made with `make_head` at fit time) or unfitted estimators; each member sees
either every feature column or one column range (`columns`), which is how late fusion over the
caches of several backbones works: the caches are aligned by row and concatenated, and each member
reads its own backbone's block.

- soft: the (weighted) mean of the members' probabilities.
- hard: the (weighted) majority of the members' predicted classes. A tie between classes is broken
  by the declared `tie_breaker`: "strongest" (the vote of the member with the best out-of-fold
  accuracy on the training rows, then the next strongest...), "first" (the first member, in the
  order given, that voted for a tied class) or "proba" (the tied class with the highest summed
  probability). `predict_proba` is the (weighted) vote share of each class; on a tie the winning
  class gets TIE_NUDGE more, so that its argmax always equals `predict`.
- stack: a logistic-regression meta-learner fitted on the members' out-of-fold probabilities of the
  training rows (`cross_val_predict`, stratified k-fold, group-aware when `groups` are given), never
  on in-sample predictions, so a member that memorises its training rows gains nothing; the members
  themselves are then refitted on every training row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from featurekit.errors import InvalidInputError
from featurekit.heads._base import HEADS, make_head

logger = logging.getLogger(__name__)

METHODS = ("soft", "hard", "stack")
TIE_BREAKERS = ("strongest", "first", "proba")
DEFAULT_MEMBERS = ("logreg", "knn")
DEFAULT_CV = 5
# Added to the tie-breaker's class in hard-vote probabilities so that argmax(predict_proba) == predict.
TIE_NUDGE = 1e-6


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@HEADS.register("ensemble")
class EnsembleHead(ClassifierMixin, BaseEstimator):
    """Several heads combined: soft vote, hard vote with a declared tie-breaker, or stacking on OOF.

    `estimators`: head names (e.g. ("logreg", "knn")) or unfitted estimators; None means
    DEFAULT_MEMBERS. `weights`: one non-negative number per member for soft and hard votes (None:
    equal). `columns`: None (every member sees every column) or one (start, stop) column range per
    member. `cv`: folds of the out-of-fold predictions that stacking and the "strongest" tie-breaker
    use. Single-label y only. After fitting: `estimators_` (fitted members), `member_names_`,
    `weights_`, `member_scores_` (out-of-fold accuracy of each member, when computed, else None) and,
    for stacking, `meta_` (the meta-learner).
    """

    featurekit_preprocessing: ClassVar[str] = "none: each member applies its own"
    featurekit_persisted_types: ClassVar[tuple[str, ...]] = (
        "featurekit.heads.ensemble.EnsembleHead",
        "sklearn.linear_model._logistic.LogisticRegression",
    )

    def __init__(
        self,
        *,
        estimators: Sequence[Any] | None = None,
        method: str = "soft",
        weights: Sequence[float] | None = None,
        tie_breaker: str = "strongest",
        columns: Sequence[tuple[int, int]] | None = None,
        meta_C: float = 1.0,
        cv: int = DEFAULT_CV,
        random_state: int | None = 0,
    ) -> None:
        self.estimators = estimators
        self.method = method
        self.weights = weights
        self.tie_breaker = tie_breaker
        self.columns = columns
        self.meta_C = meta_C
        self.cv = cv
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags

    # ------------------------------------------------------------------ parameters

    def _members(self) -> list[Any]:
        specs = DEFAULT_MEMBERS if self.estimators is None else self.estimators
        if isinstance(specs, str) or len(specs) == 0:
            raise InvalidInputError(
                f"estimators must be a non-empty list of head names or estimators, got {specs!r}"
            )
        members = []
        for spec in specs:
            if isinstance(spec, str):
                members.append(make_head(spec))
            elif hasattr(spec, "fit") and hasattr(spec, "predict_proba"):
                members.append(clone(spec))
            else:
                raise InvalidInputError(
                    f"ensemble member {spec!r} is neither a head name nor an estimator with predict_proba"
                )
        return members

    def _member_names(self) -> list[str]:
        specs = DEFAULT_MEMBERS if self.estimators is None else self.estimators
        return [s if isinstance(s, str) else type(s).__name__ for s in specs]

    def _check_params(self, n_members: int, n_features: int) -> None:
        if self.method not in METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.tie_breaker not in TIE_BREAKERS:
            raise InvalidInputError(
                f"tie_breaker must be one of {', '.join(TIE_BREAKERS)}, got {self.tie_breaker!r}"
            )
        if not _is_int(self.cv) or self.cv < 2:
            raise InvalidInputError(f"cv must be an integer of at least 2, got {self.cv!r}")
        C = self.meta_C
        if isinstance(C, bool) or not isinstance(C, int | float) or C <= 0:
            raise InvalidInputError(f"meta_C must be a positive number, got {C!r}")
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (n_members,):
                raise InvalidInputError(
                    f"weights must give one number per member ({n_members}: "
                    f"{', '.join(self._member_names())}), got {list(self.weights)}"
                )
            if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise InvalidInputError(
                    f"weights must be non-negative numbers, not all zero, got {list(self.weights)}"
                )
            if self.method == "stack":
                raise InvalidInputError(
                    "weights apply to soft and hard votes; stacking learns the members' weights itself"
                )
        if self.columns is not None:
            if len(self.columns) != n_members:
                raise InvalidInputError(
                    f"columns must give one (start, stop) range per member ({n_members}), "
                    f"got {len(self.columns)}"
                )
            for rng in self.columns:
                ok = len(rng) == 2 and all(_is_int(v) for v in rng) and 0 <= rng[0] < rng[1] <= n_features
                if not ok:
                    raise InvalidInputError(
                        f"column range {tuple(rng)!r} is not (start, stop) with 0 <= start < stop <= "
                        f"{n_features} (the number of feature columns)"
                    )

    def _block(self, X: np.ndarray, i: int) -> np.ndarray:
        if self.columns is None:
            return X
        start, stop = self.columns[i]
        return X[:, int(start) : int(stop)]

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any, *, groups: Any = None) -> EnsembleHead:
        X, y = validate_data(self, X, y, multi_output=True)
        if y.ndim == 2:
            if y.shape[1] != 1:
                raise InvalidInputError(
                    f"ensemble heads take single-label y (N,); got shape {y.shape} (multi-label?)"
                )
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InvalidInputError(
                f"an ensemble needs at least 2 classes in y; got 1 class ({self.classes_[0]!r})"
            )
        members = self._members()
        self._check_params(len(members), X.shape[1])
        self.member_names_ = self._member_names()
        weights = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, dtype=float)
        self.weights_ = weights / weights.sum()
        self.member_scores_: np.ndarray | None = None
        oof: list[np.ndarray] = []
        if self.method == "stack" or (self.method == "hard" and self.tie_breaker == "strongest"):
            oof = self._out_of_fold(members, X, y, groups)
            self.member_scores_ = np.array(
                [np.mean(self.classes_[p.argmax(axis=1)] == y) for p in oof], dtype=np.float64
            )
        self.estimators_ = [m.fit(self._block(X, i), y) for i, m in enumerate(members)]
        if self.method == "stack":
            self.meta_: LogisticRegression | None = LogisticRegression(
                C=float(self.meta_C), max_iter=1000, random_state=self.random_state
            ).fit(np.hstack(oof), y)
        else:
            self.meta_ = None
        return self

    def _out_of_fold(self, members: list[Any], X: np.ndarray, y: np.ndarray, groups: Any) -> list[np.ndarray]:
        """Each member's probabilities of each training row, from a copy fitted without that row."""
        _, counts = np.unique(y, return_counts=True)
        folds = min(int(self.cv), int(np.min(counts)))
        cv: Any
        if groups is not None:
            groups = np.asarray(groups)
            folds = min(folds, len(np.unique(groups)))
            cv = StratifiedGroupKFold(n_splits=max(folds, 2), shuffle=True, random_state=self.random_state)
        else:
            cv = StratifiedKFold(n_splits=max(folds, 2), shuffle=True, random_state=self.random_state)
        if folds < 2:
            raise InvalidInputError(
                f"out-of-fold predictions (method={self.method!r}, tie_breaker={self.tie_breaker!r}) "
                f"need at least 2 training rows of every class and 2 groups; the rarest class has "
                f"{np.min(counts)}; use method='soft' or tie_breaker='first'/'proba'"
            )
        return [
            np.asarray(
                cross_val_predict(
                    clone(m), self._block(X, i), y, cv=cv, groups=groups, method="predict_proba"
                )
            )
            for i, m in enumerate(members)
        ]

    # ------------------------------------------------------------------ prediction

    def member_probas(self, X: Any) -> list[np.ndarray]:
        """Each fitted member's (N, K) class probabilities, columns in `classes_` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return [np.asarray(m.predict_proba(self._block(X, i))) for i, m in enumerate(self.estimators_)]

    def _vote(self, probas: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(winning class index per row, weighted vote shares (N, K)) with the tie-breaker applied."""
        n, k = probas[0].shape
        picks = np.stack([p.argmax(axis=1) for p in probas], axis=1)  # (N, M)
        votes = np.zeros((n, k))
        for m, w in enumerate(self.weights_):
            np.add.at(votes, (np.arange(n), picks[:, m]), w)
        tied = np.isclose(votes, votes.max(axis=1, keepdims=True), rtol=1e-9, atol=1e-12)
        winner = votes.argmax(axis=1)
        tie_rows = tied.sum(axis=1) > 1
        if tie_rows.any():
            if self.tie_breaker == "proba":
                summed = sum(w * p for w, p in zip(self.weights_, probas, strict=True))
                winner[tie_rows] = np.where(tied, summed, -np.inf).argmax(axis=1)[tie_rows]
            else:
                open_rows = tie_rows.copy()
                for m in self._priority():
                    hit = open_rows & tied[np.arange(n), picks[:, m]]
                    winner[hit] = picks[hit, m]
                    open_rows &= ~hit
        shares = votes / votes.sum(axis=1, keepdims=True)
        shares[tie_rows, winner[tie_rows]] += TIE_NUDGE
        return winner, shares / shares.sum(axis=1, keepdims=True)

    def _priority(self) -> np.ndarray:
        """Member order for tie-breaking: by out-of-fold accuracy ("strongest") or as given ("first")."""
        if self.tie_breaker == "strongest" and self.member_scores_ is not None:
            return np.argsort(-self.member_scores_, kind="stable")
        return np.arange(len(self.estimators_))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K): mean probabilities (soft), vote shares (hard) or the meta-learner's (stack)."""
        probas = self.member_probas(X)
        if self.method == "hard":
            return self._vote(probas)[1]
        if self.method == "stack":
            assert self.meta_ is not None  # set by fit for method="stack"
            return np.asarray(self.meta_.predict_proba(np.hstack(probas)))
        return np.asarray(sum(w * p for w, p in zip(self.weights_, probas, strict=True)))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,): the vote with its tie-breaker (hard), else the most probable class."""
        if self.method == "hard":
            winner = self._vote(self.member_probas(X))[0]
        else:
            winner = self.predict_proba(X).argmax(axis=1)
        return np.asarray(self.classes_[winner])
