"""featurekit predict MODEL DATA --out FILE.csv"""

from __future__ import annotations

import argparse
from pathlib import Path

from featurekit.cli.options import (
    add_runtime_options,
    add_source_options,
    extraction_settings,
    source_options,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("predict", help="run backbone + saved head on new images, write a CSV")
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path, help="images: a folder (labelled or not), a CSV or an .npz")
    p.add_argument("--out", type=Path, required=True, help="CSV to write: id, prediction, p_<class>...")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="multi-label: one decision threshold for every label (default: the per-label ones saved "
        "with the head, else 0.5)",
    )
    p.add_argument("--trust-pickle", action="store_true", help="allow pickle/joblib model files you made")
    add_source_options(p)
    add_runtime_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api

    report = api.predict(
        args.model,
        args.data,
        out=args.out,
        source=source_options(args),
        settings=extraction_settings(args),
        threshold=args.threshold,
        trust_pickle=args.trust_pickle,
    )
    print(
        f"wrote {report.rows} predictions to {report.out}"
        + (f" ({report.failed} failed)" if report.failed else "")
    )
    return 0
