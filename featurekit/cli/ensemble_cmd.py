"""featurekit ensemble CACHE [CACHE...] --heads logreg,knn --method soft|hard|stack --out MODEL"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from featurekit.cli.options import comma_names
from featurekit.errors import InvalidInputError

COLUMNS = ("accuracy", "balanced_accuracy", "f1_macro", "top_5_accuracy", "log_loss", "ece")


def _weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in comma_names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "ensemble",
        help="combine heads (and backbones' caches) by soft/hard vote or stacking; score every member",
    )
    p.add_argument("caches", type=Path, nargs="+", metavar="CACHE", help="one cache, or one per backbone")
    p.add_argument(
        "--heads",
        type=comma_names,
        default=("logreg",),
        help="member heads, comma-separated (default: logreg; with several caches, one member per cache "
        "and head)",
    )
    p.add_argument("--method", choices=("soft", "hard", "stack"), default="soft", help="default: soft")
    p.add_argument("--weights", type=_weights, help="soft/hard vote: one weight per member, e.g. 1,1,2")
    p.add_argument(
        "--tie-breaker",
        choices=("strongest", "first", "proba"),
        default="strongest",
        help="hard vote ties: the strongest member's class (best out-of-fold accuracy), the first "
        "member's, or the highest summed probability (default: strongest)",
    )
    p.add_argument(
        "--fusion",
        choices=("late", "early"),
        default="late",
        help="several caches: late = one member per cache and head, combined by --method; early = each "
        "head on the caches' features side by side (default: late)",
    )
    p.add_argument("--cv", type=int, default=5, help="folds of the out-of-fold predictions (default: 5)")
    p.add_argument(
        "--out", type=Path, help="model file (default: reports/models/<caches>__ensemble-<method>)"
    )
    p.add_argument("--test-size", type=float, default=0.2, help="held-out fraction without a split column")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split and the folds")
    p.add_argument("--json", action="store_true", help="print every metric as one JSON object")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where run records go")
    p.set_defaults(run=run)


def _table(rows: dict[str, dict[str, Any]]) -> str:
    columns = [c for c in COLUMNS if any(c in m for m in rows.values())]
    width = max(8, *(len(name) for name in rows))
    lines = [f"{'model':<{width}}  " + "  ".join(f"{c:>{max(8, len(c))}}" for c in columns)]
    lines.append("-" * len(lines[0]))
    for name, metrics in rows.items():
        cells = [
            f"{metrics[c]:>{max(8, len(c))}.4f}" if c in metrics else f"{'-':>{max(8, len(c))}}"
            for c in columns
        ]
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from featurekit import api
    from featurekit.evaluation import format_metrics

    if not 0.0 < args.test_size < 1.0:
        raise InvalidInputError(f"--test-size must be between 0 and 1, got {args.test_size}")
    report = api.ensemble(
        args.caches,
        heads=list(args.heads),
        method=args.method,
        weights=list(args.weights) if args.weights else None,
        tie_breaker=args.tie_breaker,
        fusion=args.fusion,
        cv=args.cv,
        out=args.out,
        test_size=args.test_size,
        random_state=args.seed,
        reports_dir=args.reports_dir,
    )
    if args.json:
        print(json.dumps({"ensemble": report.metrics, "members": report.member_metrics}, sort_keys=True))
        return 0
    print(
        f"ensemble ({args.method}): trained on {report.n_train} rows, scored on {report.n_test} held-out rows"
    )
    print(f"split: {report.split}")
    if report.member_scores:
        scores = ", ".join(f"{name} {score:.4f}" for name, score in report.member_scores.items())
        print(f"out-of-fold training accuracy: {scores}")
    print(_table({**report.member_metrics, f"ensemble ({args.method})": report.metrics}))
    print()
    print(format_metrics(report.metrics))
    print(f"model saved to {report.model_path}; run record {report.run_record_path}")
    return 0
