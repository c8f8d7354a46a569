"""The parametric binary search of the linear-probe protocol, on known score curves."""

from __future__ import annotations

import numpy as np
import pytest

from featurekit.search.c_sweep import c_grid, nearest_solved, parametric_binary_search


def test_grid_is_96_log_steps_from_1e_minus_6_to_1e6() -> None:
    grid = c_grid()
    assert len(grid) == 97
    assert grid[0] == pytest.approx(1e-6) and grid[-1] == pytest.approx(1e6)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 1 / 8)


@pytest.mark.parametrize("peak", [0, 3, 17, 40, 48, 63, 90, 96])
def test_finds_the_peak_of_a_unimodal_curve_in_at_most_15_fits(peak: int) -> None:
    calls: list[list[int]] = []

    def score(indices: list[int]) -> dict[int, float]:
        calls.append(indices)
        return {i: -abs(i - peak) for i in indices}

    result = parametric_binary_search(score)
    assert result.peak == peak
    fitted = [i for batch in calls for i in batch]
    assert len(fitted) == len(set(fitted)) <= 15  # no value fitted twice
    assert calls[0] == [0, 16, 32, 48, 64, 80, 96]  # the first round is one batch of 7
    assert all(len(batch) <= 2 for batch in calls[1:])
    assert result.best_C == pytest.approx(c_grid()[peak])


def test_ties_keep_the_peak_then_take_the_smaller_C() -> None:
    flat = parametric_binary_search(lambda idx: dict.fromkeys(idx, 0.5))
    assert flat.peak == 0  # all equal: the strongest regularisation
    # A plateau: 40..56 score the same; the first-round peak (48) is kept through every round.
    plateau = parametric_binary_search(lambda idx: {i: 1.0 if 40 <= i <= 56 else 0.0 for i in idx})
    assert plateau.peak == 48


def test_the_search_follows_the_rounds_of_the_protocol() -> None:
    result = parametric_binary_search(lambda idx: {i: -abs(i - 30) for i in idx})
    assert result.rounds[0] == [0, 16, 32, 48, 64, 80, 96]
    assert result.rounds[1] == [24, 40]  # span 8 around the first peak (32)
    assert [len(r) for r in result.rounds] == [7, 2, 2, 2, 2]


def test_a_scorer_that_skips_a_value_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no score"):
        parametric_binary_search(lambda idx: {i: 0.0 for i in idx[1:]})


def test_nearest_solved_prefers_the_smaller_C_on_ties() -> None:
    assert nearest_solved(20, []) is None
    assert nearest_solved(20, [16, 24]) == 16
    assert nearest_solved(23, [16, 24]) == 24


def test_warm_start_interpolates_between_solved_neighbours_in_log_c() -> None:
    from types import SimpleNamespace

    from featurekit.search.linear_probe import Between, warm_start

    def head(value: float) -> SimpleNamespace:
        return SimpleNamespace(coef_=np.full((2, 3), value), intercept_=np.full(2, -value))

    heads = {16: head(1.0), 32: head(3.0), 48: head(11.0)}
    start = warm_start(20, heads)  # a quarter of the way from 16 to 32 on the log-spaced grid
    assert isinstance(start, Between)
    assert (start.low, start.high, start.t) == (heads[16], heads[32], 0.25)
    assert warm_start(8, heads) is heads[16]  # outside the solved range: the nearest solution
    assert warm_start(60, heads) is heads[48]
    assert warm_start(5, {}) is None  # nothing solved yet: a cold start
