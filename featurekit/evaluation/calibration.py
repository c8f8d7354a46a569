"""Calibration of single-label probabilities: expected calibration error (ECE)."""

from __future__ import annotations

import numpy as np

from featurekit.errors import InvalidInputError
from featurekit.evaluation.registry import METRICS, need_proba

ECE_BINS = 15


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = ECE_BINS) -> float:
    """ECE of the top-class confidence (Guo et al., 2017, "On Calibration of Modern Neural Networks").

    Each row's confidence is its largest probability and its prediction that column (the first one on
    a tie). Rows go into `n_bins` (15 by default) equal-width confidence bins (0, 1/n], (1/n, 2/n], …,
    ((n-1)/n, 1] (a confidence of exactly 0 joins the first bin), and

        ECE = sum over bins b of (n_b / N) * |accuracy_b - mean confidence_b|

    Empty bins add nothing. 0 means calibrated; an overconfident model has confidence above accuracy.
    """
    y, p = np.asarray(y_true), np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1 or len(y) != len(p):
        raise InvalidInputError(
            f"ECE needs y_true of shape (N,) and proba of shape (N, K); got {y.shape} and {p.shape}"
        )
    if len(y) == 0:
        raise InvalidInputError("ECE needs at least one row")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise InvalidInputError(f"n_bins must be a positive integer, got {n_bins!r}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.minimum(np.searchsorted(edges[1:-1], confidence, side="left"), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        members = bins == b
        ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


@METRICS.register("ece")
def ece(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Expected calibration error, 15 equal-width bins of the top-class probability."""
    return expected_calibration_error(y_true, need_proba("ece", proba))
