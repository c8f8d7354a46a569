"""featurekit fit CACHE --head logreg [--out MODEL]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from featurekit.cli.options import add_operating_point_options, comma_names
from featurekit.errors import InvalidInputError


def _param(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value  # a bare string such as class_weight=balanced


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("fit", help="fit a head on cached features, score it on the held-out part")
    p.add_argument("cache", type=Path)
    p.add_argument("--head", default="logreg", help="head name (see `featurekit list heads`; default logreg)")
    p.add_argument("--C", dest="C", type=float, help="inverse L2 strength of linear heads")
    p.add_argument(
        "--class-weight", choices=("balanced", "none"), help="weight classes inversely to frequency"
    )
    p.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other head hyperparameter (repeatable), e.g. is_unbalance=true or "
        "scale_pos_weight=7 for lightgbm (`featurekit list heads` shows each head's parameters)",
    )
    p.add_argument(
        "--resample",
        choices=("none", "under", "over"),
        default="none",
        help="single-label: randomly under- or over-sample the training rows to balanced classes "
        "(seeded by --seed; never the held-out rows; default none)",
    )
    p.add_argument("--out", type=Path, help="model file (default: reports/models/<cache>__<head>.skops)")
    p.add_argument("--test-size", type=float, default=0.2, help="held-out fraction without a split column")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    add_operating_point_options(p)
    p.add_argument(
        "--features",
        type=comma_names,
        help="with a cache made by `extract --layers`: the blocks to fit on, e.g. layer-1.avg,layer-2.max "
        "(default: every column; `featurekit extract --layers` prints their names)",
    )
    p.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where run records go")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api
    from featurekit.evaluation import format_metrics

    if not 0.0 < args.test_size < 1.0:
        raise InvalidInputError(f"--test-size must be between 0 and 1, got {args.test_size}")
    params: dict[str, Any] = dict(args.param)
    if args.C is not None:
        params["C"] = args.C
    if args.class_weight is not None:
        params["class_weight"] = None if args.class_weight == "none" else args.class_weight
    report = api.fit(
        args.cache,
        head=args.head,
        params=params,
        out=args.out,
        test_size=args.test_size,
        random_state=args.seed,
        reports_dir=args.reports_dir,
        threshold=args.threshold,
        resample=args.resample,
        label_thresholds=args.label_thresholds,
        blocks=list(args.features) if args.features else None,
    )
    print(f"{args.head}: trained on {report.n_train} rows, scored on {report.n_test} held-out rows")
    print(f"split: {report.split}")
    print(format_metrics(report.metrics))
    print(f"model saved to {report.model_path}; run record {report.run_record_path}")
    for figure in report.figures:
        print(f"figure: {figure}")
    return 0
