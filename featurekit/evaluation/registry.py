"""The metric registry: every scalar metric, by scikit-learn scorer name where one exists.

A metric is `fn(y_true, *, y_pred, proba) -> float`. Modules in this package register theirs with
`@METRICS.register(name)`; importing `featurekit.evaluation` imports them all.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from featurekit._registry import Registry
from featurekit.errors import InvalidInputError


class MetricFn(Protocol):
    def __call__(self, y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float: ...


METRICS: Registry[MetricFn] = Registry("metric")


def need_proba(name: str, proba: np.ndarray | None) -> np.ndarray:
    """`proba` as an array, or an error naming the metric that needed it."""
    if proba is None:
        raise InvalidInputError(f"metric {name!r} needs predicted probabilities; this head gives none")
    return np.asarray(proba)
