"""Random search with successive halving (Jamieson & Talwalkar 2016) over a head's declared space.

Candidates are drawn by scikit-learn's `ParameterSampler` (seeded). Every candidate is fitted on a
small share of the fit rows and scored on the validation rows; the best 1/factor go on to `factor`
times more rows, until the survivors are fitted on all of them. Bad candidates are thus stopped early,
after a cheap fit, and the budget goes to the promising ones: with 27 candidates and factor 3 the
whole search costs about as much as 9 fits on all rows, instead of 27.

The training subsets are nested prefixes of one seeded, class-interleaved order of the fit rows, so
every rung's subset is stratified and contains the previous rung's. Trials are evaluated in a fixed
order; with the same seed the same candidates win.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import ParameterSampler

from featurekit.errors import InvalidInputError

DEFAULT_N_TRIALS = 27
DEFAULT_FACTOR = 3
MIN_ROWS_PER_CLASS = 5  # a rung never trains on fewer rows than this per class (or label)
VARIANT = "features"  # the search-space name of the cached-variant dimension


@dataclass(frozen=True)
class Candidate:
    trial: int
    params: dict[str, Any]  # head hyperparameters, as the head's __init__ takes them
    variant: str  # which cached features (see variants.py)


@dataclass(frozen=True)
class Trial:
    """One candidate fitted on `n_train` rows at one rung and scored on the validation rows."""

    trial: int
    rung: int
    n_train: int
    params: dict[str, Any]
    variant: str
    score: float  # -inf when the fit failed
    seconds: float
    status: str = "ok"  # "ok" or "failed"
    error: str = ""


@dataclass
class HalvingResult:
    trials: list[Trial] = field(default_factory=list)  # every (candidate, rung), in evaluation order
    best: Trial | None = None


def draw_candidates(
    space: dict[str, Any],
    variants: list[str],
    *,
    n_trials: int,
    random_state: int,
    defaults: Candidate | None = None,
) -> list[Candidate]:
    """`n_trials` candidates: seeded draws from `space`, the cached variant drawn as one more dimension.

    `defaults` (the head's own defaults on the whole cache) is trial 0 when given, so a search never
    ends below what `featurekit fit` would have given, as judged on the validation rows.
    """
    if n_trials < 1:
        raise InvalidInputError(f"the number of trials (--trials) must be at least 1, got {n_trials}")
    from featurekit.heads._space import Choice

    first = [defaults] if defaults is not None else []
    full = dict(space)
    if len(variants) > 1:
        full[VARIANT] = Choice(tuple(variants))
    n_draws = n_trials - len(first)
    if not full or n_draws < 1:
        return first or [Candidate(trial=0, params={}, variant=variants[0])]
    sampled = list(ParameterSampler(full, n_iter=n_draws, random_state=random_state))
    return first + [
        Candidate(
            trial=len(first) + i,
            params={k: v for k, v in params.items() if k != VARIANT},
            variant=str(params.get(VARIANT, variants[0])),
        )
        for i, params in enumerate(sampled)
    ]


def schedule(n_candidates: int, n_rows: int, *, factor: int, min_rows: int) -> list[tuple[int, int]]:
    """(candidates kept, training rows) per rung, the last rung on all `n_rows`."""
    if factor < 2:
        raise InvalidInputError(f"the halving factor (--factor) must be at least 2, got {factor}")
    by_candidates = 1 + math.floor(math.log(max(n_candidates, 1), factor) + 1e-9)
    by_rows = 1 + math.floor(math.log(max(n_rows / max(min_rows, 1), 1.0), factor) + 1e-9)
    n_rungs = max(1, min(by_candidates, by_rows))
    rungs, keep = [], n_candidates
    for r in range(n_rungs):
        rows = n_rows if r == n_rungs - 1 else max(min_rows, n_rows // factor ** (n_rungs - 1 - r))
        rungs.append((keep, min(rows, n_rows)))
        keep = max(1, math.ceil(keep / factor))
    return rungs


def interleaved_order(y: np.ndarray, *, random_state: int) -> np.ndarray:
    """A permutation of the rows whose every prefix is (nearly) stratified by class.

    Each class's rows are shuffled and spread evenly over [0, 1); sorting by that position interleaves
    the classes. Multi-label y is interleaved by its rarest positive label (rows without one last-ish).
    """
    rng = np.random.default_rng(random_state)
    y = np.asarray(y)
    if y.ndim == 2:
        counts = y.sum(axis=0)
        rarity = np.where(y > 0, counts[None, :], np.inf)
        key = np.where(np.isfinite(rarity.min(axis=1)), np.argmin(rarity, axis=1), -1)
    else:
        key = y
    position = np.empty(len(key), dtype=np.float64)
    for value in np.unique(key):
        rows = np.flatnonzero(key == value)
        rng.shuffle(rows)
        position[rows] = (np.arange(len(rows)) + rng.random()) / len(rows)
    return np.argsort(position + rng.random(len(key)) * 1e-9, kind="stable")


Evaluate = Callable[[Candidate, np.ndarray], float]


def successive_halving(
    candidates: list[Candidate],
    evaluate: Evaluate,
    *,
    order: np.ndarray,
    factor: int = DEFAULT_FACTOR,
    min_rows: int,
    known: dict[tuple[int, int], Trial] | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    protected: frozenset[int] = frozenset(),
) -> HalvingResult:
    """Run the rungs; `evaluate(candidate, rows)` fits on `rows` (indices into the fit rows), scores.

    `known`: trials of an interrupted earlier run, by (trial, rung); they are not fitted again. A fit
    that raises is recorded as failed (score -inf) and the search goes on. `protected` trials (the
    head's defaults) go on to every rung whatever their early score: a configuration that learns
    slowly (a low learning rate with many trees) looks poor on few rows, and the final comparison on
    all rows must still include what `fit` would have used.
    """
    import time

    known = dict(known or {})
    result = HalvingResult()
    alive = list(candidates)
    rungs = schedule(len(candidates), len(order), factor=factor, min_rows=min_rows)
    for rung, (_, n_rows) in enumerate(rungs):
        rows = np.sort(order[:n_rows])
        scored: list[Trial] = []
        for cand in alive:
            trial = known.get((cand.trial, rung))
            if trial is None:
                started = time.perf_counter()
                try:
                    score, status, error = float(evaluate(cand, rows)), "ok", ""
                except Exception as exc:  # one bad configuration must not cost the search
                    score, status, error = float("-inf"), "failed", f"{type(exc).__name__}: {exc}"
                if not np.isfinite(score) and status == "ok":
                    score, status, error = float("-inf"), "failed", "the score is not finite"
                trial = Trial(
                    trial=cand.trial,
                    rung=rung,
                    n_train=n_rows,
                    params=cand.params,
                    variant=cand.variant,
                    score=score,
                    seconds=time.perf_counter() - started,
                    status=status,
                    error=error,
                )
                if on_trial is not None:
                    on_trial(trial)
            scored.append(trial)
            result.trials.append(trial)
        ranked = sorted(zip(scored, alive, strict=True), key=lambda pair: (-pair[0].score, pair[0].trial))
        if rung + 1 < len(rungs):
            kept = [cand for _, cand in ranked[: rungs[rung + 1][0]]]
            rest = ranked[rungs[rung + 1][0] :]
            extra = [c for t, c in rest if c.trial in protected and t.status == "ok"]
            alive = kept + extra
        else:
            result.best = ranked[0][0]
    if result.best is None or result.best.status != "ok":
        failures = [t for t in result.trials if t.status != "ok"]
        detail = f"; first error: {failures[0].error}" if failures else ""
        raise InvalidInputError(f"every candidate of the search failed{detail}")
    return result
