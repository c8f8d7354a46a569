"""Search-space declarations: what `featurekit search` may try for each head.

A head declares `featurekit_search_space: ClassVar[dict[str, Dimension]]`, e.g.
`{"C": LogUniform(1e-4, 1e2)}`. Every dimension has `rvs(random_state=...)`, so scikit-learn's
`ParameterSampler` draws from it directly; `log` tells plots to use a log axis, and `decode` turns a
value read back from JSON (lists for tuples) into what the head's `__init__` takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurekit.errors import InvalidInputError


def _rng(random_state: Any) -> np.random.Generator | np.random.RandomState:
    if isinstance(random_state, np.random.Generator | np.random.RandomState):
        return random_state
    return np.random.default_rng(random_state)


@dataclass(frozen=True)
class LogUniform:
    """A positive float, uniform in log space between `low` and `high`."""

    low: float
    high: float
    log = True

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise InvalidInputError(f"LogUniform needs 0 < low < high, got {self.low}, {self.high}")

    def rvs(self, random_state: Any = None) -> float:
        u = float(_rng(random_state).uniform(math.log(self.low), math.log(self.high)))
        return math.exp(u)

    def decode(self, value: Any) -> float:
        return float(value)

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Uniform:
    """A float, uniform between `low` and `high`."""

    low: float
    high: float
    log = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise InvalidInputError(f"Uniform needs low < high, got {self.low}, {self.high}")

    def rvs(self, random_state: Any = None) -> float:
        return float(_rng(random_state).uniform(self.low, self.high))

    def decode(self, value: Any) -> float:
        return float(value)

    def describe(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntLogUniform:
    """An integer between `low` and `high` (inclusive), uniform in log space."""

    low: int
    high: int
    log = True

    def __post_init__(self) -> None:
        if not 1 <= self.low < self.high:
            raise InvalidInputError(f"IntLogUniform needs 1 <= low < high, got {self.low}, {self.high}")

    def rvs(self, random_state: Any = None) -> int:
        u = float(_rng(random_state).uniform(math.log(self.low), math.log(self.high + 1)))
        return min(int(math.exp(u)), self.high)

    def decode(self, value: Any) -> int:
        return int(value)

    def describe(self) -> str:
        return f"integer, log-uniform [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Choice:
    """One of `options` (any JSON-able values; tuples come back from JSON as lists)."""

    options: tuple[Any, ...]
    log = False

    def __post_init__(self) -> None:
        if not self.options:
            raise InvalidInputError("Choice needs at least one option")

    def rvs(self, random_state: Any = None) -> Any:
        rng = _rng(random_state)
        pick = (
            rng.integers(len(self.options))
            if isinstance(rng, np.random.Generator)
            else rng.randint(len(self.options))
        )
        return self.options[int(pick)]

    def decode(self, value: Any) -> Any:
        for option in self.options:
            if option == value or (isinstance(option, tuple) and list(option) == value):
                return option
        raise InvalidInputError(f"{value!r} is not one of {list(self.options)}")

    def describe(self) -> str:
        return "one of " + ", ".join(str(o) for o in self.options)


Dimension = LogUniform | Uniform | IntLogUniform | Choice
