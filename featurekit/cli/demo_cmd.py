"""featurekit demo: extract → fit → evaluate on an embedded real dataset, offline."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="the whole workflow on a built-in real dataset, offline")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="default: tf_efficientnet_lite0")
    p.add_argument("--workdir", type=Path, default=Path("reports/demo"), help="where data, cache, model go")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api

    report = api.demo(backbone=args.backbone, workdir=args.workdir, progress=args.progress, echo=print)
    print(
        f"\ndemo done in {report.seconds:.0f} s: {report.backbone} features + logreg head, "
        f"held-out accuracy {report.accuracy:.1%} on {report.n_test} unseen images "
        f"({report.dataset})"
    )
    return 0
