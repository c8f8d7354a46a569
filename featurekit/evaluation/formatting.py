"""The metric block as text for the CLI: scalars, a per-class table, and compact summaries of the rest."""

from __future__ import annotations

import math
import textwrap

MAX_PRINTED_CLASSES = 12
TAIL_SUMMARY_THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 0.9)


def format_metrics(metrics: dict[str, object]) -> str:
    """Headline scalars, then a per-class table, the confusion matrix (≤ 12 classes) and a tail summary.

    Nested data (the confusion matrix of many classes, the full tail-accuracy curve) is never dumped:
    it stays in the JSON output.
    """
    lines = []
    headline = {k: v for k, v in metrics.items() if not isinstance(v, dict | list) and k != "protocols"}
    width = max((len(k) for k in headline), default=0)
    for key, value in headline.items():
        lines.append(f"{key:<{width}}  {_fmt(value)}")
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        lines += ["", *_per_class_table(per_class)]
    matrix = metrics.get("confusion_matrix")
    if isinstance(matrix, list) and matrix:
        names = list(per_class) if isinstance(per_class, dict) else [str(i) for i in range(len(matrix))]
        lines += ["", *_confusion_lines(matrix, names)]
    curve = metrics.get("tail_accuracy")
    if isinstance(curve, list) and curve:
        lines += ["", *_tail_lines(curve)]
    if isinstance(metrics.get("protocols"), str):
        lines += ["", *textwrap.wrap(f"mAP protocols: {metrics['protocols']}", width=100)]
    return "\n".join(lines)


def _per_class_table(per_class: dict[str, object]) -> list[str]:
    first = next(iter(per_class.values()))
    columns = list(first) if isinstance(first, dict) else []
    name_w = max(5, *(len(str(n)) for n in per_class))
    col_w = [max(9, len(c)) for c in columns]
    header = f"{'class':<{name_w}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, col_w, strict=True))
    lines = [header, "-" * len(header)]
    for name, row in per_class.items():
        values = row if isinstance(row, dict) else {}
        cells = "  ".join(f"{_fmt(values.get(c)):>{w}}" for c, w in zip(columns, col_w, strict=True))
        lines.append(f"{name!s:<{name_w}}  {cells}")
    return lines


def _confusion_lines(matrix: list[object], names: list[str]) -> list[str]:
    k = len(matrix)
    if k > MAX_PRINTED_CLASSES or len(names) != k:
        return [f"confusion matrix: {k}x{k}, not printed above {MAX_PRINTED_CLASSES} classes (see the JSON)"]
    rows = [[str(v) for v in row] if isinstance(row, list) else [] for row in matrix]
    short = all(len(n) <= 8 for n in names)  # long names: number the columns, name the rows
    columns = names if short else [str(i) for i in range(k)]
    labels = names if short else [f"{i} {n}" for i, n in enumerate(names)]
    cell_w = max(3, *(len(c) for c in [*columns, *(v for row in rows for v in row)]))
    name_w = max(len(n) for n in labels)
    lines = [
        "confusion matrix (rows = true class, columns = predicted)",
        " " * name_w + "  " + " ".join(f"{c:>{cell_w}}" for c in columns),
    ]
    lines += [
        f"{n:<{name_w}}  " + " ".join(f"{v:>{cell_w}}" for v in row)
        for n, row in zip(labels, rows, strict=True)
    ]
    return lines


def _tail_lines(curve: list[object]) -> list[str]:
    points = [p for p in curve if isinstance(p, dict)]
    chosen = [
        p
        for p in points
        if any(math.isclose(float(p["threshold"]), t, abs_tol=1e-9) for t in TAIL_SUMMARY_THRESHOLDS)
    ]
    if not chosen:  # a custom grid: first, middle and last points
        chosen = [points[i] for i in sorted({0, len(points) // 2, len(points) - 1})] if points else []
    lines = [f"tail accuracy (score > t; {len(points)} thresholds in the JSON)", "   t  precision  coverage"]
    for p in chosen:
        lines.append(f"{float(p['threshold']):4.2f}  {_fmt(p['precision']):>9}  {_fmt(p['coverage']):>8}")
    return lines


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
