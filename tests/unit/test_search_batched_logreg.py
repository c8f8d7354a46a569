"""The batched L-BFGS finds scikit-learn's lbfgs minimiser at the same C (the same objective)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from featurekit.errors import InvalidInputError
from featurekit.search.batched_logreg import BatchedLogisticSolver


def _data(n_classes: int, *, n: int = 600, d: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=12, n_classes=n_classes, n_clusters_per_class=1,
        class_sep=0.8, random_state=seed,
    )  # fmt: skip
    return StandardScaler().fit_transform(X), y


def _sklearn(X: np.ndarray, y: np.ndarray, C: float, **kw: object) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=C, max_iter=5000, tol=1e-8, **kw).fit(X, y)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("C", [1e-3, 0.1, 10.0])
def test_same_minimiser_as_sklearn_lbfgs(n_classes: int, C: float) -> None:
    X, y = _data(n_classes)
    ours = BatchedLogisticSolver(X, y, device="cpu", dtype="float64", tol=1e-8, max_iter=5000).solve([C])[0]
    ref = _sklearn(X, y, C)
    assert ours.converged
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=2e-4 * max(1.0, np.abs(ref.coef_).max()))
    np.testing.assert_allclose(
        ours.intercept, ref.intercept_, atol=2e-4 * max(1.0, np.abs(ref.intercept_).max())
    )


def test_float32_default_tolerance_matches_sklearn_accuracy_within_a_fraction_of_a_point() -> None:
    X, y = _data(5, n=3000, d=60, seed=3)
    train, test = np.arange(2400), np.arange(2400, 3000)
    solver = BatchedLogisticSolver(X[train], y[train], device="cpu")  # float32, tol 1e-4: the search's
    for solution in solver.solve([1e-3, 1e-1, 10.0]):
        ours = np.argmax(X[test] @ solution.coef.T + solution.intercept, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = LogisticRegression(C=solution.C, max_iter=1000).fit(X[train], y[train]).predict(X[test])
        assert abs(np.mean(ours == y[test]) - np.mean(ref == y[test])) <= 0.003


def test_sample_weights_match_sklearn() -> None:
    X, y = _data(3)
    w = np.where(y == 0, 3.0, 1.0)
    ours = BatchedLogisticSolver(X, y, w, device="cpu", dtype="float64", tol=1e-8, max_iter=5000).solve(
        [0.5]
    )[0]
    ref = LogisticRegression(C=0.5, max_iter=5000, tol=1e-8).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=5e-4)


def test_multilabel_columns_are_independent_sigmoids() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12))
    Y = (X[:, :3] + 0.5 * rng.normal(size=(400, 3)) > 0).astype(np.float64)
    ours = BatchedLogisticSolver(X, Y, multilabel=True, device="cpu", dtype="float64", tol=1e-8).solve([0.3])[
        0
    ]
    for j in range(3):
        ref = _sklearn(X, Y[:, j], 0.3)
        np.testing.assert_allclose(ours.coef[j], ref.coef_[0], atol=5e-4)
        assert ours.intercept[j] == pytest.approx(ref.intercept_[0], abs=5e-4)


def test_a_batch_equals_each_problem_alone_and_warm_starts_save_iterations() -> None:
    X, y = _data(4, n=800)
    solver = BatchedLogisticSolver(X, y, device="cpu", dtype="float64", tol=1e-7, max_iter=3000)
    Cs = [1e-4, 1e-2, 1.0, 100.0]
    together = solver.solve(Cs)
    for C, joint in zip(Cs, together, strict=True):
        alone = solver.solve([C])[0]
        np.testing.assert_allclose(joint.coef, alone.coef, atol=1e-5)
        assert joint.n_iter == alone.n_iter  # nothing is shared between the problems
    cold = solver.solve([0.013])[0]
    warm = solver.solve([0.013], init=[together[1]])[0]
    np.testing.assert_allclose(warm.coef, cold.coef, atol=1e-4)
    assert warm.n_iter < cold.n_iter


def test_rejects_bad_values() -> None:
    X, y = _data(2)
    with pytest.raises(InvalidInputError, match="positive"):
        BatchedLogisticSolver(X, y, device="cpu").solve([0.0])
    with pytest.raises(InvalidInputError, match="max_iter"):
        BatchedLogisticSolver(X, y, device="cpu", max_iter=0)


def test_the_sweep_solver_never_reuses_a_preparation_for_other_features() -> None:
    """Regression: the prepared solver was cached by id(X); a new array at a freed address matched it."""
    from featurekit.search.linear_probe import BatchedSweepSolver

    X, y = _data(3, n=300)
    solver = BatchedSweepSolver(device="cpu")

    def fit_on_a_temporary() -> int:
        temporary = X[:200].copy()
        solver.fit_many(temporary, y[:200], [1.0], [None])
        return id(temporary)

    old = fit_on_a_temporary()
    for _ in range(200):  # try to get a new array at the freed address (what the old cache matched)
        other = X[100:300] * 2.0
        if id(other) == old:
            break
    refit = solver.fit_many(other, y[100:300], [1.0], [None])[0]
    fresh = BatchedSweepSolver(device="cpu").fit_many(other, y[100:300], [1.0], [None])[0]
    np.testing.assert_allclose(refit.coef_, fresh.coef_)
    np.testing.assert_allclose(refit.scaler_.mean_, other.mean(axis=0))


def test_a_start_between_two_solutions_reaches_the_same_minimiser_in_fewer_iterations() -> None:
    from featurekit.search.linear_probe import BatchedSweepSolver, Between

    X, y = _data(4, n=800)
    solver = BatchedSweepSolver(device="cpu", tol=1e-6)
    low, high = solver.fit_many(X, y, [1e-2, 1.0], [None, None])
    C = 0.1  # halfway between them in log C
    cold = solver.fit_many(X, y, [C], [None])[0]
    nearest = solver.fit_many(X, y, [C], [low])[0]
    between = solver.fit_many(X, y, [C], [Between(low, high, 0.5)])[0]
    scale = np.abs(cold.coef_).max()
    for fitted in (nearest, between):
        np.testing.assert_allclose(fitted.coef_, cold.coef_, atol=1e-3 * scale)
    assert int(between.n_iter_[0]) < int(nearest.n_iter_[0]) < int(cold.n_iter_[0])
