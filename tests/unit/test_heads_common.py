"""scikit-learn's estimator checks over every registered head: a new head is checked once registered."""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from featurekit.heads import HEADS, make_head


@parametrize_with_checks([make_head(name) for name in HEADS.names()])
def test_sklearn_estimator_contract(estimator: Any, check: Any) -> None:
    check(estimator)
