"""The heads registry and what `list_heads` reports about each head.

A head is registered as a factory: usually the estimator class itself, decorated with
`@HEADS.register("name")`. The factory's docstring's first line is its description; two optional
class attributes describe it further:

- `featurekit_preprocessing`: the preprocessing the head applies itself, as `"KIND: note"` where KIND
  is one of PREPROCESSING_KINDS ("standardize", "l2-normalize", "none"); `featurekit list heads`
  shows it, and tests/unit/test_heads_declarations.py checks every registered head declares one.
- `featurekit_persisted_types`: the exact type names (module.qualname) a fitted instance is made of,
  which `featurekit.persist` adds to its allow-list when loading skops files.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator

from featurekit._registry import Registry
from featurekit.errors import InvalidInputError

HeadFactory = Callable[..., BaseEstimator]

HEADS: Registry[HeadFactory] = Registry("head")

# What a head does to the features before its model sees them (the KIND of `featurekit_preprocessing`).
PREPROCESSING_KINDS = ("standardize", "l2-normalize", "none")


@dataclass(frozen=True)
class HeadInfo:
    """What `featurekit list heads` shows for one registered head."""

    name: str
    description: str
    preprocessing: str  # "KIND: note", KIND one of PREPROCESSING_KINDS; "undeclared" when missing
    params: dict[str, Any]  # hyperparameter -> default
    search_space: dict[str, str]  # what `featurekit search` tunes: hyperparameter -> its range

    @property
    def preprocessing_kind(self) -> str:
        """ "standardize", "l2-normalize" or "none" (or whatever an undeclared head says)."""
        return self.preprocessing.partition(":")[0].strip()


def _describe(factory: HeadFactory) -> str:
    doc = inspect.getdoc(factory) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _defaults(factory: HeadFactory) -> dict[str, Any]:
    params = inspect.signature(factory).parameters.values()
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in params
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def head_defaults(name: str) -> dict[str, Any]:
    """Every hyperparameter of the registered head `name` with its default value."""
    return _defaults(HEADS.get(name))


def make_head(name: str, **params: Any) -> BaseEstimator:
    """An unfitted head by registry name, e.g. `make_head("logreg", C=0.1)`."""
    factory = HEADS.get(name)
    allowed = head_defaults(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidInputError(
            f"head {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed)) or '(none)'}"
        )
    return factory(**params)


def list_heads() -> list[HeadInfo]:
    """Every registered head, sorted by name."""
    infos = []
    for name in HEADS.names():
        factory = HEADS.get(name)
        infos.append(
            HeadInfo(
                name=name,
                description=_describe(factory),
                preprocessing=str(getattr(factory, "featurekit_preprocessing", "undeclared")),
                params=_defaults(factory),
                search_space={
                    k: v.describe() for k, v in getattr(factory, "featurekit_search_space", {}).items()
                },
            )
        )
    return infos


def persisted_types() -> frozenset[str]:
    """The type names every registered head declares as parts of a fitted instance."""
    names: set[str] = set()
    for name in HEADS.names():
        names.update(getattr(HEADS.get(name), "featurekit_persisted_types", ()))
    return frozenset(names)
