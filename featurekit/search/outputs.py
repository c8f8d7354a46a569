"""What a search leaves behind besides the model: the trials table and the search plot."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from featurekit.search.halving import VARIANT
from featurekit.search.runner import SeedOutcome

logger = logging.getLogger(__name__)


def write_trials_csv(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Every logged trial, one row each: seed, strategy fields, each hyperparameter, score, seconds."""
    param_names = sorted({k for e in entries for k in e.get("params", {})})
    # The sweep logs its C beside the params; a halving search over C has it among them: one column.
    sweep_c = ["C"] if "C" not in param_names and any("C" in e for e in entries) else []
    header = [
        "seed",
        "kind",
        "trial",
        "rung",
        "n_train",
        "variant",
        *sweep_c,
        *param_names,
        "score",
        "seconds",
        "n_iter",
        "status",
        "error",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for e in entries:
            params = e.get("params", {})
            writer.writerow(
                [
                    e.get("seed"),
                    e.get("kind"),
                    e.get("trial", e.get("index")),
                    e.get("rung", ""),
                    e.get("n_train", ""),
                    e.get("variant"),
                    *[e.get("C", "") for _ in sweep_c],
                    *[_cell(params[p]) if p in params else "" for p in param_names],
                    e.get("score"),
                    round(float(e.get("seconds", 0.0)), 4),
                    e.get("n_iter", ""),
                    e.get("status", "ok"),
                    e.get("error", ""),
                ]
            )
    tmp.replace(path)
    return path


def _cell(value: Any) -> Any:
    """A CSV cell: numbers and strings as they are, lists (tuples) as JSON."""
    return value if isinstance(value, int | float | str) else json.dumps(value)


def save_plot(
    path: Path,
    entries: list[dict[str, Any]],
    space: dict[str, Any],
    strategy: str,
    scoring: str,
    first: SeedOutcome,
    *,
    head: str,
) -> Path | None:
    from featurekit.errors import MissingDependencyError
    from featurekit.search.plots import save_search_png

    seeds = {e["seed"] for e in entries if "seed" in e}
    if strategy == "sweep":
        rows = [
            {
                "params": {"C": e["C"], VARIANT: e["variant"]},
                "score": e["score"],
                "group": f"seed {e['seed']}" if len(seeds) > 1 else e["variant"],
            }
            for e in entries
            if e.get("kind") == "sweep"
        ]
        dims = {"C": True}
    else:
        rows = [
            {
                "params": {**e["params"], VARIANT: e["variant"]},
                "score": e["score"],
                "group": int(e["n_train"]),
            }
            for e in entries
            if e.get("kind") == "halving" and e["seed"] == first.seed
        ]
        dims = {name: bool(getattr(dim, "log", False)) for name, dim in space.items()}
    if len({r["params"][VARIANT] for r in rows}) > 1:
        dims[VARIANT] = False
    best = {"params": {**first.best_params, VARIANT: first.best_variant}, "score": first.val_score}
    try:
        return save_search_png(rows, dims, path, scoring=scoring, title=f"search: {head}", best=best)
    except MissingDependencyError as exc:
        logger.warning("no search plot written: %s", exc)
        return None
