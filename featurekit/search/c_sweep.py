"""The linear-probe sweep of CLIP (Radford et al. 2021, appendix A.3), independent of the solver.

The L2 strength is swept over 1e-6 … 1e6 in 96 log-spaced steps (97 values, 8 per decade). A
parametric binary search finds the peak of the validation score without fitting all 97: it scores
the 7 values 1e-6, 1e-4, …, 1e6 (every 16th), then halves the interval around the peak (8, 4, 2, 1
steps), each time scoring the neighbours left and right of the current peak and moving the peak to
the best of the three. That is 7 + 4·2 = 15 fits, at most.

Ties keep the current peak, then prefer the smaller C (stronger regularisation), so the result does
not depend on floating-point noise in the order of evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

GRID_LOW_EXP, GRID_HIGH_EXP, STEPS_PER_DECADE = -6, 6, 8
INITIAL_STRIDE = 16  # 1e-6, 1e-4, …: every second decade
SPANS = (8, 4, 2, 1)


def c_grid() -> np.ndarray:
    """The 97 values of C: 10**-6 … 10**6, 8 per decade."""
    n = (GRID_HIGH_EXP - GRID_LOW_EXP) * STEPS_PER_DECADE + 1
    return np.logspace(GRID_LOW_EXP, GRID_HIGH_EXP, n)


@dataclass
class SweepResult:
    """Grid positions scored (in order), their validation scores, and the peak."""

    grid: np.ndarray
    scores: dict[int, float] = field(default_factory=dict)  # grid index -> validation score
    rounds: list[list[int]] = field(default_factory=list)  # the indices scored in each round
    peak: int = -1

    @property
    def best_C(self) -> float:
        return float(self.grid[self.peak])

    @property
    def best_score(self) -> float:
        return self.scores[self.peak]


ScoreFn = Callable[[list[int]], dict[int, float]]


def parametric_binary_search(score: ScoreFn, *, grid: np.ndarray | None = None) -> SweepResult:
    """Run the sweep; `score(indices)` fits at grid[i] for each new index i, returns {i: val score}.

    `score` receives every round's new indices at once, so a solver can fit them in one batch and warm
    start each from the values already fitted.
    """
    grid = c_grid() if grid is None else grid
    last = len(grid) - 1
    result = SweepResult(grid=grid)

    def run(indices: list[int]) -> None:
        new = sorted({i for i in indices if i not in result.scores})
        if new:
            got = score(new)
            missing = set(new) - set(got)
            if missing:
                raise RuntimeError(f"the scorer returned no score for grid positions {sorted(missing)}")
            result.scores.update({i: float(got[i]) for i in new})
        result.rounds.append(new)

    initial = list(range(0, last + 1, INITIAL_STRIDE))
    if initial[-1] != last:
        initial.append(last)
    run(initial)
    peak = _best(result.scores, initial, current=None)
    for span in SPANS:
        left, right = max(peak - span, 0), min(peak + span, last)
        run([left, right])
        peak = _best(result.scores, [left, peak, right], current=peak)
    result.peak = peak
    return result


def _best(scores: dict[int, float], candidates: list[int], *, current: int | None) -> int:
    """Highest score; ties keep `current`, then take the smaller C (lower grid index)."""
    top = max(scores[i] for i in candidates)
    tied = [i for i in candidates if scores[i] == top]
    if current is not None and current in tied:
        return current
    return min(tied)


def nearest_solved(index: int, solved: list[int]) -> int | None:
    """The solved grid position closest to `index` (ties: the smaller C, whose solution is smoother)."""
    if not solved:
        return None
    return min(solved, key=lambda j: (abs(j - index), j))
