"""featurekit evaluate MODEL CACHE [CACHE...] [--json]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="score a saved head on a cache made the same way")
    p.add_argument("model", type=Path)
    p.add_argument(
        "cache", type=Path, nargs="+", metavar="CACHE", help="a cache (an ensemble of backbones: one each)"
    )
    p.add_argument(
        "--rows",
        choices=("unseen", "all"),
        default="unseen",
        help="unseen: leave out the head's training rows (default); all: every labelled row",
    )
    p.add_argument(
        "--label-thresholds",
        choices=("saved", "0.5"),
        default="saved",
        help="multi-label heads: decide each label at the threshold saved with the head (default) or 0.5",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickle/joblib model files you made")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api
    from featurekit.evaluation import format_metrics

    report = api.evaluate(
        args.model,
        args.cache if len(args.cache) > 1 else args.cache[0],
        rows=args.rows,
        trust_pickle=args.trust_pickle,
        label_thresholds=args.label_thresholds,
    )
    if args.json:
        print(json.dumps(report.metrics, sort_keys=True))
    else:
        print(f"scored {report.n_rows} {report.rows} rows of {', '.join(map(str, args.cache))}")
        print(format_metrics(report.metrics))
    return 0
