"""The search plot: validation score against each hyperparameter (and the cached variant)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from featurekit.errors import MissingDependencyError


def save_search_png(
    rows: list[dict[str, Any]],
    dimensions: dict[str, bool],
    path: Path,
    *,
    scoring: str,
    title: str,
    best: dict[str, Any] | None = None,
) -> Path:
    """One panel per dimension: score (y) against the value (x), log axes where `dimensions[name]`.

    `rows`: finished trials, each with "params" (dict), "score" and "group" (a colour: the rung's
    training rows, or the sweep round). A dimension whose values are not numbers is drawn as categories.
    """
    # matplotlib's Agg canvas directly, as evaluation/confusion.py: no pyplot, no change to the
    # caller's backend (a notebook keeps its own).
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise MissingDependencyError("the search plot needs matplotlib: pip install matplotlib") from exc
    names = list(dimensions) or ["(no hyperparameters)"]
    ok = [r for r in rows if isinstance(r.get("score"), int | float) and math.isfinite(r["score"])]
    groups = sorted({r["group"] for r in ok}, key=_sort_key)
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(4.2 * len(names), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        values = [r["params"].get(name) for r in ok]
        # A numeric dimension may hold one symbolic default (trial 0's C="auto"): the numbers keep
        # their (log) axis and the symbolic trials become reference lines at their scores.
        numeric = any(_is_number(v) for v in values) and all(
            _is_number(v) or isinstance(v, str) for v in values
        )
        on_axis = [r for r in ok if _is_number(r["params"].get(name))] if numeric else ok
        categories = sorted({_label(v) for v in values}) if not numeric else []
        for g, group in enumerate(groups):
            members = [r for r in on_axis if r["group"] == group]
            xs = [
                r["params"].get(name) if numeric else categories.index(_label(r["params"].get(name)))
                for r in members
            ]
            colour = cmap(g / max(len(groups) - 1, 1))
            label = f"{group} rows" if isinstance(group, int) else str(group)
            ax.scatter(xs, [r["score"] for r in members], s=22, color=colour, label=label, alpha=0.85)
        for r in ok if numeric else []:
            if not _is_number(r["params"].get(name)):
                ax.axhline(r["score"], color="grey", linestyle="--", linewidth=1, alpha=0.6)
                ax.annotate(
                    f"{name}={r['params'].get(name)}"
                    + (f" ({r['group']} rows)" if isinstance(r["group"], int) else ""),
                    (0.01, r["score"]),
                    xycoords=("axes fraction", "data"),
                    fontsize=7,
                    color="grey",
                    va="bottom",
                )
        if best is not None and name in best["params"]:
            value = best["params"][name]
            if not numeric:
                ax.scatter([categories.index(_label(value))], [best["score"]], **_BEST)
            elif _is_number(value):
                ax.scatter([value], [best["score"]], **_BEST)
        if numeric and dimensions.get(name) and on_axis:
            ax.set_xscale("log")
        if categories:
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels(categories, rotation=30, ha="right", fontsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel(f"validation {scoring}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


_BEST: dict[str, Any] = {"marker": "*", "s": 220, "color": "crimson", "zorder": 5, "label": "best"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _label(value: Any) -> str:
    """A category's label, the same for a value fitted in this run and read back from the trial log
    (a tuple such as mlp's `(512,)` comes back from JSON as the list `[512]`)."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))
