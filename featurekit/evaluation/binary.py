"""Binary decision metrics on the positive-class score: FAR, FRR, HTER and the EER / min-HTER thresholds.

Conventions (as in biometrics and presentation-attack detection): class 1 is the positive ("accept")
class, class 0 the negative one, and a row is accepted when its score >= threshold.

- FAR, false accept rate  = fraction of negatives (y == 0) with score >= threshold
- FRR, false reject rate  = fraction of positives (y == 1) with score <  threshold
- HTER, half total error rate = (FAR + FRR) / 2

The candidate thresholds of `eer_threshold` and `min_hter_threshold` are the distinct finite scores as
scikit-learn's `roc_curve(..., drop_intermediate=False)` lists them (its leading `inf` "reject all"
point is dropped; it never beats the "accept all" point at the lowest score, whose HTER is also 0.5).
The errors are compared as exact integer counts, and among equally good thresholds the largest one is
taken (the first in `roc_curve`'s decreasing order: fewest false accepts), so the result is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_curve

from featurekit.errors import InvalidInputError
from featurekit.evaluation.registry import METRICS, need_proba

DEFAULT_THRESHOLD = 0.5


def far_frr_hter(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(FAR, FRR, HTER) of accepting rows whose positive-class score is >= `threshold`."""
    y, s = _check_binary(y_true, scores)
    if math.isnan(threshold):
        raise InvalidInputError("threshold is NaN; give a number (0.5 for probabilities)")
    far = float(np.mean(s[y == 0] >= threshold))
    frr = float(np.mean(s[y == 1] < threshold))
    return far, frr, (far + frr) / 2


def eer_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold where FAR and FRR are closest (the equal error rate point).

    No interpolation: the threshold is one of the scores, the one minimising |FAR - FRR|; ties go to
    the largest such threshold (see the module docstring).
    """
    thresholds, fp, fn, n_neg, n_pos = _error_counts(y_true, scores)
    gap = np.abs(fp * n_pos - fn * n_neg)  # |FAR - FRR| * n_neg * n_pos, exact
    return float(thresholds[int(np.argmin(gap))])


def min_hter_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the lowest HTER on these rows (ties: the largest threshold)."""
    thresholds, fp, fn, n_neg, n_pos = _error_counts(y_true, scores)
    total = fp * n_pos + fn * n_neg  # 2 * HTER * n_neg * n_pos, exact
    return float(thresholds[int(np.argmin(total))])


def binary_metrics(y_true: np.ndarray, scores: np.ndarray, *, threshold: float) -> dict[str, float]:
    """`threshold`, `far`, `frr`, `hter` at it, and `eer` with its `eer_threshold`.

    `eer` is the HTER at the EER threshold chosen on these same rows: an optimistic, "oracle" number
    (the threshold has seen the test labels). Report `hter` at a threshold fixed beforehand (e.g. the
    EER threshold of a validation set) as the honest figure.
    """
    far, frr, hter = far_frr_hter(y_true, scores, threshold)
    eer_t = eer_threshold(y_true, scores)
    return {
        "threshold": float(threshold),
        "far": far,
        "frr": frr,
        "hter": hter,
        "eer": far_frr_hter(y_true, scores, eer_t)[2],
        "eer_threshold": eer_t,
    }


def _error_counts(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Candidate thresholds (decreasing) with false-accept and false-reject counts at each."""
    y, s = _check_binary(y_true, scores)
    n_neg, n_pos = int(np.sum(y == 0)), int(np.sum(y == 1))
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    keep = np.isfinite(thresholds)
    fp = np.rint(fpr[keep] * n_neg).astype(np.int64)
    fn = n_pos - np.rint(tpr[keep] * n_pos).astype(np.int64)
    return thresholds[keep], fp, fn, n_neg, n_pos


def _check_binary(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise InvalidInputError(
            f"y_true and scores must be 1-D arrays of the same length; got shapes {y.shape} and {s.shape}"
        )
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        raise InvalidInputError(
            f"y_true must hold only 0 (negative) and 1 (positive); got values {values[:10].tolist()}"
        )
    if len(values) < 2:
        raise InvalidInputError(
            f"FAR and FRR need both negatives (0) and positives (1) in y_true; got only {values.tolist()}"
        )
    if not np.isfinite(s).all():
        raise InvalidInputError(f"scores must be finite; got {int(np.sum(~np.isfinite(s)))} NaN/inf")
    return y.astype(np.int64), s


def _positive_scores(name: str, proba: np.ndarray | None) -> np.ndarray:
    p = need_proba(name, proba)
    if p.ndim != 2 or p.shape[1] != 2:
        raise InvalidInputError(
            f"metric {name!r} is for binary tasks: proba must have 2 columns, got shape {p.shape}"
        )
    return p[:, 1]


@METRICS.register("far")
def far(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """False accept rate at threshold 0.5 on the class-1 probability (`far_frr_hter` for others)."""
    return far_frr_hter(y_true, _positive_scores("far", proba), DEFAULT_THRESHOLD)[0]


@METRICS.register("frr")
def frr(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """False reject rate at threshold 0.5 on the class-1 probability (`far_frr_hter` for others)."""
    return far_frr_hter(y_true, _positive_scores("frr", proba), DEFAULT_THRESHOLD)[1]


@METRICS.register("hter")
def hter(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Half total error rate at threshold 0.5 on the class-1 probability."""
    return far_frr_hter(y_true, _positive_scores("hter", proba), DEFAULT_THRESHOLD)[2]


@METRICS.register("eer")
def eer(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """HTER at the EER threshold of these same rows: optimistic ("oracle"), see `binary_metrics`."""
    scores = _positive_scores("eer", proba)
    return far_frr_hter(y_true, scores, eer_threshold(y_true, scores))[2]
