"""Metrics (by scikit-learn scorer name) and train/test splits on numpy arrays. Never imports torch."""

from featurekit.evaluation.metrics import (
    METRICS,
    MULTI_LABEL_METRICS,
    SINGLE_LABEL_METRICS,
    MetricFn,
    compute_metrics,
    expand_proba,
    format_metrics,
)
from featurekit.evaluation.splits import SplitResult, labelled_rows, split_train_test

__all__ = [
    "METRICS",
    "MULTI_LABEL_METRICS",
    "SINGLE_LABEL_METRICS",
    "MetricFn",
    "SplitResult",
    "compute_metrics",
    "expand_proba",
    "format_metrics",
    "labelled_rows",
    "split_train_test",
]
