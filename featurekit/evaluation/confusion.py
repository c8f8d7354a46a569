"""The confusion matrix as plain data, and a PNG of it (matplotlib is imported only when drawing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from featurekit.errors import InvalidInputError, MissingDependencyError


def confusion_matrix_list(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int) -> list[list[int]]:
    """Counts as a nested list: row i = true class i, column j = predicted class j (class index order)."""
    labels = np.arange(n_classes)
    return [[int(v) for v in row] for row in confusion_matrix(y_true, y_pred, labels=labels)]


def save_confusion_matrix_png(
    matrix: list[list[int]] | np.ndarray, class_names: list[str], path: str | Path
) -> Path:
    """Draw `matrix` (rows = true class, columns = predicted) to a PNG at `path`; returns the path.

    Uses matplotlib's Agg canvas directly (no pyplot, no change to the caller's backend).
    """
    counts = np.asarray(matrix)
    k = len(class_names)
    if counts.ndim != 2 or counts.shape != (k, k):
        raise InvalidInputError(
            f"matrix must be square with one row and column per class name, i.e. shape {(k, k)}; "
            f"got {counts.shape}"
        )
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            "saving a confusion matrix image needs matplotlib: pip install matplotlib"
        ) from exc
    side = max(4.0, 0.45 * k + 2.0)
    fig = Figure(figsize=(side, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=class_names, rotation=90)
    ax.set_yticks(range(k), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        high = counts.max() / 2 if counts.size else 0
        for i in range(k):
            for j in range(k):
                color = "white" if counts[i, j] > high else "black"
                ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out
