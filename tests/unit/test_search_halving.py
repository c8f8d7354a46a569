"""Random search with successive halving: schedule, nested stratified subsets, winners, failures, resume."""

from __future__ import annotations

import numpy as np
import pytest

from featurekit.errors import InvalidInputError
from featurekit.heads._space import Choice, IntLogUniform, LogUniform, Uniform
from featurekit.search.halving import (
    Candidate,
    draw_candidates,
    interleaved_order,
    schedule,
    successive_halving,
)

SPACE = {
    "C": LogUniform(1e-3, 1e3),
    "k": IntLogUniform(1, 50),
    "kind": Choice(("a", "b")),
    "p": Uniform(0, 1),
}


def test_schedule_thins_candidates_and_grows_rows_by_the_factor() -> None:
    assert schedule(27, 2700, factor=3, min_rows=10) == [(27, 100), (9, 300), (3, 900), (1, 2700)]
    # Few rows cap the number of rungs; the last rung always trains on every row.
    assert schedule(27, 100, factor=3, min_rows=30) == [(27, 33), (9, 100)]
    assert schedule(1, 500, factor=3, min_rows=10) == [(1, 500)]
    with pytest.raises(InvalidInputError, match="factor"):
        schedule(9, 100, factor=1, min_rows=1)


def test_draws_are_seeded_and_cover_the_variants() -> None:
    a = draw_candidates(SPACE, ["x", "y"], n_trials=20, random_state=4)
    b = draw_candidates(SPACE, ["x", "y"], n_trials=20, random_state=4)
    c = draw_candidates(SPACE, ["x", "y"], n_trials=20, random_state=5)
    assert a == b and a != c
    assert {cand.variant for cand in a} == {"x", "y"}
    for cand in a:
        assert 1e-3 <= cand.params["C"] <= 1e3 and 1 <= cand.params["k"] <= 50
        assert cand.params["kind"] in ("a", "b") and "features" not in cand.params


def test_the_defaults_are_trial_zero() -> None:
    defaults = Candidate(trial=0, params={"C": 1.0}, variant="y")
    drawn = draw_candidates(SPACE, ["x", "y"], n_trials=5, random_state=0, defaults=defaults)
    assert drawn[0] == defaults and [c.trial for c in drawn] == [0, 1, 2, 3, 4]
    assert drawn[1:] == [
        Candidate(trial=c.trial + 1, params=c.params, variant=c.variant)
        for c in draw_candidates(SPACE, ["x", "y"], n_trials=4, random_state=0)
    ]


def test_every_prefix_of_the_interleaved_order_is_stratified() -> None:
    y = np.repeat(np.arange(4), [400, 200, 100, 100])
    order = interleaved_order(y, random_state=0)
    assert sorted(order) == list(range(len(y)))
    for n in (40, 80, 200, 400):
        counts = np.bincount(y[order[:n]], minlength=4)
        np.testing.assert_allclose(counts / n, [0.5, 0.25, 0.125, 0.125], atol=2 / n + 0.01)


def test_the_best_candidate_wins_and_bad_ones_stop_early() -> None:
    candidates = [
        Candidate(trial=i, params={"q": q}, variant="all") for i, q in enumerate(np.linspace(0, 1, 9))
    ]
    seen: list[tuple[int, int]] = []

    def evaluate(cand: Candidate, rows: np.ndarray) -> float:
        seen.append((cand.trial, len(rows)))
        return -abs(cand.params["q"] - 0.7) + 0.001 * len(rows) / 900  # more rows: slightly better

    result = successive_halving(candidates, evaluate, order=np.arange(900), factor=3, min_rows=10)
    assert result.best is not None and result.best.params["q"] == pytest.approx(0.75)
    full = [t for t, n in seen if n == 900]
    assert len(full) == 1  # only the final survivor is fitted on every row
    assert len(seen) == 9 + 3 + 1


def test_protected_defaults_reach_the_last_rung_and_win_when_best_there() -> None:
    """A slow learner (trial 0) scores worst on few rows but best on all: protection keeps it."""
    candidates = [Candidate(trial=i, params={}, variant="all") for i in range(9)]

    def evaluate(cand: Candidate, rows: np.ndarray) -> float:
        if cand.trial == 0:
            return 0.2 if len(rows) < 900 else 0.95
        return 0.5 + 0.01 * cand.trial

    plain = successive_halving(candidates, evaluate, order=np.arange(900), min_rows=10)
    assert plain.best is not None and plain.best.trial == 8
    kept = successive_halving(
        candidates, evaluate, order=np.arange(900), min_rows=10, protected=frozenset({0})
    )
    assert kept.best is not None and kept.best.trial == 0
    assert [t.trial for t in kept.trials if t.n_train == 900] == [8, 0]  # one extra full fit


def test_a_failing_candidate_is_recorded_and_the_search_goes_on() -> None:
    candidates = [Candidate(trial=i, params={"q": i}, variant="all") for i in range(4)]

    def evaluate(cand: Candidate, rows: np.ndarray) -> float:
        if cand.trial == 2:
            raise ValueError("diverged")
        return float(cand.trial)

    result = successive_halving(candidates, evaluate, order=np.arange(100), factor=2, min_rows=10)
    failed = [t for t in result.trials if t.status == "failed"]
    assert len(failed) == 1 and "diverged" in failed[0].error and failed[0].score == float("-inf")
    assert result.best is not None and result.best.trial == 3

    with pytest.raises(InvalidInputError, match=r"every candidate of the search failed.*boom"):
        successive_halving(
            candidates,
            lambda c, r: (_ for _ in ()).throw(RuntimeError("boom")),
            order=np.arange(100),
            min_rows=10,
        )


def test_known_trials_are_not_fitted_again() -> None:
    candidates = [Candidate(trial=i, params={"q": i}, variant="all") for i in range(9)]
    calls: list[int] = []

    def evaluate(cand: Candidate, rows: np.ndarray) -> float:
        calls.append(cand.trial)
        return float(cand.trial % 5)

    first = successive_halving(candidates, evaluate, order=np.arange(900), min_rows=10)
    n_all = len(calls)
    known = {(t.trial, t.rung): t for t in first.trials[:5]}
    calls.clear()
    again = successive_halving(candidates, evaluate, order=np.arange(900), min_rows=10, known=known)
    assert len(calls) == n_all - 5
    assert again.best is not None and first.best is not None
    assert (again.best.trial, again.best.score) == (first.best.trial, first.best.score)
