"""Multi-label ranking metrics: Pascal VOC 2007 11-point AP and the tail-accuracy curve.

Two mAP protocols are reported side by side, and they differ (VOC11 is usually higher):

- `average_precision`: scikit-learn's `average_precision_score`, the non-interpolated step-wise AP
  (sum over ranks of (R_n - R_{n-1}) * P_n, tied scores grouped), macro mean over classes.
- `map_voc11`: the Pascal VOC 2007 11-point interpolated AP, macro mean over classes.

Both average only over classes with at least one positive row; a class without one has no AP (None
in `per_class`) and is counted in `average_precision_excluded_classes`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featurekit.errors import InvalidInputError, MissingDependencyError
from featurekit.evaluation.registry import METRICS, need_proba

AP_PROTOCOLS = (
    "average_precision = scikit-learn average_precision_score (non-interpolated); "
    "map_voc11 = Pascal VOC2007 11-point interpolated AP; "
    "both macro over classes with at least one positive"
)

# 0.00, 0.05, ..., 0.95 as exact decimals (k / 20, not a float running sum).
TAIL_THRESHOLDS: tuple[float, ...] = tuple(k / 20 for k in range(20))


def voc11_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """11-point interpolated AP of one class, as the VOC2007 devkit's `VOCevalcls.m` computes it.

    Rows are ranked by decreasing score (ties keep row order: the devkit's MATLAB `sort` is stable);
    precision and recall are taken after each row; then for t in 0, 0.1, …, 1 the interpolated
    precision is the largest precision at any recall >= t (0 if none), and AP is their mean.
    The recall levels are k/10 exactly, so a recall of 3/10 counts for t = 0.3 (a running-sum
    grid such as `np.arange(0, 1.1, 0.1)` gives 0.30000000000000004 and misses it).
    """
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise InvalidInputError(
            f"y_true and scores must be 1-D arrays of the same length; got shapes {y.shape} and {s.shape}"
        )
    positive = y > 0
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise InvalidInputError("VOC AP is undefined for a class with no positive row")
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(positive[order])
    recall = tp / n_pos
    precision = tp / np.arange(1, len(y) + 1)
    points = [precision[recall >= k / 10] for k in range(11)]
    return float(np.mean([np.max(p) if p.size else 0.0 for p in points]))


def per_class_voc11_average_precision(y_true: np.ndarray, proba: np.ndarray) -> list[float | None]:
    """VOC11 AP of each column; None for a class with no positive in y_true."""
    onehot = _as_onehot(y_true, proba)
    return [
        voc11_average_precision(onehot[:, c], proba[:, c]) if onehot[:, c].any() else None
        for c in range(proba.shape[1])
    ]


def tail_accuracy_curve(
    y_true: np.ndarray, proba: np.ndarray, *, thresholds: tuple[float, ...] = TAIL_THRESHOLDS
) -> list[dict[str, float | None]]:
    """For each t: precision of all (row, label) predictions with score > t, and the share kept.

    `coverage` = kept pairs / all N*C pairs; `precision` is None where no pair is kept.
    """
    y, p = np.asarray(y_true), np.asarray(proba, dtype=np.float64)
    if y.ndim != 2 or p.shape != y.shape:
        raise InvalidInputError(
            f"tail accuracy needs multi-hot y_true and proba of the same (N, C) shape; "
            f"got {y.shape} and {p.shape}"
        )
    truth = y > 0
    curve: list[dict[str, float | None]] = []
    for t in thresholds:
        kept = p > t
        n_kept = int(kept.sum())
        curve.append(
            {
                "threshold": float(t),
                "precision": float(truth[kept].mean()) if n_kept else None,
                "coverage": n_kept / p.size,
            }
        )
    return curve


def save_tail_accuracy_png(curves: dict[str, list[dict[str, float | None]]], path: str | Path) -> Path:
    """Plot tail-accuracy curves (name -> `tail_accuracy_curve` output) to a PNG at `path`.

    Precision (solid) and coverage (dashed) against the score threshold t, one colour per curve.
    Uses matplotlib's Agg canvas directly (no pyplot, no change to the caller's backend).
    """
    if not curves:
        raise InvalidInputError("no tail-accuracy curve to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            "saving a tail-accuracy plot needs matplotlib: pip install matplotlib"
        ) from exc
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(curves.items()):
        t = [float(p["threshold"] or 0.0) for p in curve]
        precision = [np.nan if p["precision"] is None else float(p["precision"]) for p in curve]
        coverage = [float(p["coverage"] or 0.0) for p in curve]
        colour = f"C{i % 10}"
        ax.plot(t, precision, color=colour, marker="o", markersize=3, label=f"{name}: precision")
        ax.plot(t, coverage, color=colour, linestyle="--", label=f"{name}: coverage")
    ax.set_xlabel("score threshold t (keep (image, label) pairs with score > t)")
    ax.set_ylabel("precision / coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out


def _as_onehot(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    y, p = np.asarray(y_true), np.asarray(proba)
    onehot = y if y.ndim == 2 else np.eye(p.shape[1], dtype=np.int64)[y]
    if onehot.shape != p.shape or p.ndim != 2:
        raise InvalidInputError(
            f"proba must have shape (N, C) matching y_true; got y_true {y.shape} and proba {p.shape}"
        )
    return onehot


@METRICS.register("map_voc11")
def map_voc11(y_true: np.ndarray, *, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Mean VOC2007 11-point AP over classes with at least one positive (NaN when none has)."""
    ap = per_class_voc11_average_precision(y_true, need_proba("map_voc11", proba))
    valid = [v for v in ap if v is not None]
    return float(np.mean(valid)) if valid else float("nan")
