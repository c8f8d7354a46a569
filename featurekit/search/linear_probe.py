"""The C sweep of `c_sweep.py` with a real solver: featurekit's batched L-BFGS, or scikit-learn's lbfgs.

Both solvers fit the same model at the same C (standardised features, L2 logistic regression, one
softmax for several classes, one sigmoid for two, independent sigmoids for multi-label), so their
sweeps choose comparably; `bench/search_speed.py` runs the two side by side.

- `BatchedSweepSolver` ("featurekit"): every round's values of C are solved together on the GPU when
  there is one (`batched_logreg.py`), each warm-started from the solutions already found
  (`warm_start`: interpolated in log C between the two values around it, else the nearest one). Its
  heads are `logreg-torch` heads.
- `SklearnSweepSolver` ("scikit-learn"): one `logreg` head (scikit-learn's lbfgs) per C, the values of
  a round fitted in parallel on `n_jobs` processes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.base import clone

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.search.c_sweep import SweepResult, c_grid, nearest_solved, parametric_binary_search
from featurekit.search.scoring import validation_score

logger = logging.getLogger(__name__)

SOLVERS = ("featurekit", "scikit-learn")


@dataclass(frozen=True)
class CTrial:
    """One value of C fitted on the training rows and scored on the validation rows."""

    index: int  # position in the 97-value grid
    C: float
    score: float
    seconds: float  # this value's share of its round's wall time
    n_iter: int
    converged: bool


class SweepSolver(Protocol):
    name: str
    head_name: str

    def fit_many(self, X: np.ndarray, y: np.ndarray, Cs: list[float], warm: list[Any]) -> list[Any]: ...


class BatchedSweepSolver:
    """featurekit's solver: all values of a round in one batched L-BFGS, warm-started."""

    name = "featurekit"
    head_name = "logreg-torch"

    def __init__(
        self,
        *,
        class_weight: str | None = None,
        device: str = "auto",
        dtype: str = "float32",
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        # The saved head says how it was solved: in `dtype` at `tol` (its own default is float64 on a CPU).
        self.template = make_head(
            "logreg-torch",
            C=1.0,
            class_weight=class_weight,
            device=device,
            dtype=dtype,
            max_iter=max_iter,
            tol=tol,
        )
        self.device, self.dtype, self.max_iter, self.tol = device, dtype, max_iter, tol
        # (X, prepared head, solver): X itself is held, so "is" cannot match a new array at a freed address
        self._prepared: tuple[np.ndarray, Any, Any] | None = None

    def _prepare(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        from featurekit.search.batched_logreg import BatchedLogisticSolver

        if self._prepared is not None and self._prepared[0] is X:
            return self._prepared[1], self._prepared[2]
        head = clone(self.template)
        Xs, targets, weights = head.prepare_fit(X, y)
        if not head.multilabel_:
            weights = weights[:, 0]
        solver = BatchedLogisticSolver(
            Xs,
            targets,
            weights,
            multilabel=head.multilabel_,
            device=self.device,
            dtype=self.dtype,
            max_iter=self.max_iter,
            tol=self.tol,
        )
        self._prepared = (X, head, solver)
        return head, solver

    def fit_many(self, X: np.ndarray, y: np.ndarray, Cs: list[float], warm: list[Any]) -> list[Any]:
        from featurekit.search.batched_logreg import LinearSolution

        prepared, solver = self._prepare(X, y)
        init: list[LinearSolution | None] = []
        for w in warm:
            if w is None:
                init.append(None)
                continue
            if isinstance(w, Between):
                coef = (1 - w.t) * w.low.coef_ + w.t * w.high.coef_
                intercept = (1 - w.t) * w.low.intercept_ + w.t * w.high.intercept_
            else:
                coef, intercept = w.coef_, w.intercept_
            # A starting point: the solver reads only coef and intercept.
            init.append(
                LinearSolution(C=float("nan"), coef=coef, intercept=intercept, n_iter=0, converged=True)
            )
        heads = []
        for solution in solver.solve(Cs, init=init):
            head = clone(prepared).set_params(C=solution.C)
            for name in ("scaler_", "classes_", "multilabel_", "n_features_in_"):
                setattr(head, name, getattr(prepared, name))
            head.C_ = solution.C
            head.coef_, head.intercept_ = solution.coef, solution.intercept
            head.n_iter_ = np.asarray([solution.n_iter], dtype=np.int32)
            head.converged_ = solution.converged
            heads.append(head)
        return heads


@dataclass(frozen=True)
class Between:
    """A warm start between two solved values of C: their solutions, interpolated in log C by the
    solver that uses them (`t` of the way from `low` to `high`)."""

    low: Any
    high: Any
    t: float


def warm_start(index: int, heads: dict[int, Any]) -> Any:
    """The starting point for grid position `index`: the solutions on both sides of it, to be
    interpolated linearly in log C (the grid is log-spaced, so in grid positions), when it lies
    between two solved values; else the nearest solved head; else None (a cold start).

    Every refining round of the binary search fits values that lie between solved ones, and the
    regularisation path is smooth in log C: on CIFAR-10 Lite0 features (10 classes) the refining
    fits took 171 L-BFGS iterations in all from interpolated starts against 421 from the nearest
    solution, at the same tolerance (bench/search_speed.py).
    """
    solved = sorted(heads)
    below = [j for j in solved if j < index]
    above = [j for j in solved if j > index]
    if below and above:
        return Between(heads[below[-1]], heads[above[0]], (index - below[-1]) / (above[0] - below[-1]))
    nearest = nearest_solved(index, solved)
    return None if nearest is None else heads[nearest]


class SklearnSweepSolver:
    """scikit-learn's lbfgs (the `logreg` head), one fit per C, a round's fits in parallel."""

    name = "scikit-learn"
    head_name = "logreg"

    def __init__(self, *, class_weight: str | None = None, max_iter: int = 1000, n_jobs: int = -1) -> None:
        self.template = make_head("logreg", C=1.0, class_weight=class_weight, max_iter=max_iter)
        self.n_jobs = n_jobs

    def fit_many(self, X: np.ndarray, y: np.ndarray, Cs: list[float], warm: list[Any]) -> list[Any]:
        from joblib import Parallel, delayed

        jobs = (delayed(_fit_clone)(self.template, X, y, C) for C in Cs)
        fitted: list[Any] = Parallel(n_jobs=min(len(Cs), _cpu_jobs(self.n_jobs)))(jobs)
        for head in fitted:
            n_iter = getattr(head.estimator_, "n_iter_", np.zeros(1))
            head.n_iter_ = np.asarray(n_iter).reshape(-1)[:1].astype(np.int32)
            head.converged_ = bool(int(head.n_iter_[0]) < head.max_iter)
        return fitted


def _fit_clone(template: Any, X: np.ndarray, y: np.ndarray, C: float) -> Any:
    return clone(template).set_params(C=C).fit(X, y)


def _cpu_jobs(n_jobs: int) -> int:
    cores = os.cpu_count() or 1
    return cores if n_jobs in (-1, 0) else max(1, min(n_jobs, cores))


def make_sweep_solver(name: str, *, class_weight: str | None, device: str, n_jobs: int = -1) -> SweepSolver:
    if name == "featurekit":
        return BatchedSweepSolver(class_weight=class_weight, device=device)
    if name == "scikit-learn":
        return SklearnSweepSolver(class_weight=class_weight, n_jobs=n_jobs)
    raise InvalidInputError(f"solver must be one of {', '.join(SOLVERS)}, got {name!r}")


@dataclass
class SweepOutcome:
    sweep: SweepResult
    trials: list[CTrial]
    best_head: Any | None  # the head fitted at the peak on the training rows (None when resumed)


def sweep_c(
    solver: SweepSolver,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    scoring: str,
    n_classes: int,
    known: dict[int, float] | None = None,
    on_trial: Callable[[CTrial], None] | None = None,
) -> SweepOutcome:
    """The parametric binary search for C with `solver`, fitted on `train` and scored on `val`.

    `known`: scores from an interrupted earlier run of the same sweep (grid index -> score); those
    values are not fitted again. `on_trial` is called after every new value (to log it at once).
    """
    X_tr, y_tr = train
    X_val, y_val = val
    heads: dict[int, Any] = {}
    trials: list[CTrial] = []
    known = dict(known or {})
    grid = c_grid()

    def score(indices: list[int]) -> dict[int, float]:
        out = {i: known[i] for i in indices if i in known}
        todo = [i for i in indices if i not in known]
        if not todo:
            return out
        warm = [warm_start(i, heads) for i in todo]
        started = time.perf_counter()
        fitted = solver.fit_many(X_tr, y_tr, [float(grid[i]) for i in todo], warm)
        seconds = (time.perf_counter() - started) / len(todo)
        for i, head in zip(todo, fitted, strict=True):
            s = validation_score(
                scoring, y_val, head.predict_proba(X_val), classes=_classes(head), n_classes=n_classes
            )
            heads[i] = head
            trial = CTrial(
                index=i,
                C=float(grid[i]),
                score=s,
                seconds=seconds,
                n_iter=int(np.asarray(head.n_iter_).max()),
                converged=bool(getattr(head, "converged_", True)),
            )
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
            out[i] = s
        return out

    result = parametric_binary_search(score, grid=grid)
    return SweepOutcome(sweep=result, trials=trials, best_head=heads.get(result.peak))


def _classes(head: Any) -> np.ndarray | None:
    return None if getattr(head, "multilabel_", False) else np.asarray(head.classes_)
