"""The heads registry: make_head, list_heads, errors."""

from __future__ import annotations

import pytest

from featurekit.errors import InvalidInputError, UnknownNameError
from featurekit.heads import HEADS, HeadInfo, list_heads, make_head
from featurekit.heads.logreg import DEFAULT_C, LogisticRegressionHead


def test_make_head_builds_registered_head_with_params() -> None:
    head = make_head("logreg", C=0.5, class_weight="balanced")
    assert isinstance(head, LogisticRegressionHead)
    assert head.get_params()["C"] == 0.5
    assert head.get_params()["class_weight"] == "balanced"
    assert make_head("logreg").get_params()["C"] == DEFAULT_C


def test_unknown_head_names_close_matches() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown head 'logrg'; did you mean logreg"):
        make_head("logrg")


def test_unknown_param_lists_allowed_params() -> None:
    with pytest.raises(
        InvalidInputError, match=r"no parameter\(s\) alpha, penalty; allowed: C, class_weight"
    ):
        make_head("logreg", penalty="l1", alpha=1.0)


def test_list_heads_describes_each_registered_head() -> None:
    infos = list_heads()
    assert [i.name for i in infos] == HEADS.names()
    logreg = next(i for i in infos if i.name == "logreg")
    assert isinstance(logreg, HeadInfo)
    assert logreg.description.startswith("Logistic regression")
    assert "\n" not in logreg.description
    assert "StandardScaler" in logreg.preprocessing
    assert logreg.params == {
        "C": DEFAULT_C,
        "class_weight": None,
        "max_iter": 1000,
        "standardize": True,
        "random_state": None,
    }


def test_registering_a_duplicate_name_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        HEADS.register("logreg")(LogisticRegressionHead)
