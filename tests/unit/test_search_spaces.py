"""Every registered head declares a search space whose draws it accepts and fits with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import ParameterSampler

from featurekit.heads import HEADS, make_head
from featurekit.heads._space import Choice, IntLogUniform, LogUniform, Uniform

# The ensemble head's hyperparameters are its member heads; each member is searched on its own.
SEARCHABLE = [name for name in HEADS.names() if name != "ensemble"]


@pytest.mark.parametrize("name", SEARCHABLE)
def test_every_head_declares_a_space_and_fits_with_its_draws(name: str, rng: np.random.Generator) -> None:
    space = getattr(HEADS.get(name), "featurekit_search_space", None)
    assert space, f"head {name!r} declares no featurekit_search_space"
    X = rng.normal(size=(90, 6))
    y = (X[:, 0] + 0.3 * rng.normal(size=90) > 0).astype(int) + (X[:, 1] > 1).astype(int)
    for params in ParameterSampler(space, n_iter=2, random_state=0):
        if name == "mlp":
            params = {**params, "max_epochs": 3}
        head = make_head(name, **params).fit(X, y)
        assert head.predict_proba(X).shape == (90, 3)
        # Values survive the trial log's JSON and come back as the head takes them.
        for key, value in params.items():
            if key in space:
                assert space[key].decode(json.loads(json.dumps(value))) == value


def test_dimensions_sample_within_bounds_and_reject_bad_bounds() -> None:
    from featurekit.errors import InvalidInputError

    gen = np.random.default_rng(0)
    assert all(1e-2 <= LogUniform(1e-2, 1e2).rvs(gen) <= 1e2 for _ in range(100))
    assert all(3 <= IntLogUniform(3, 9).rvs(gen) <= 9 for _ in range(100))
    assert {IntLogUniform(1, 3).rvs(np.random.RandomState(i)) for i in range(200)} == {1, 2, 3}
    assert all(0 <= Uniform(0, 1).rvs(gen) <= 1 for _ in range(10))
    assert Choice(((1, 2), (3,))).decode([3]) == (3,)
    with pytest.raises(InvalidInputError):
        LogUniform(0, 1)
    with pytest.raises(InvalidInputError):
        Choice(("a",)).decode("b")
