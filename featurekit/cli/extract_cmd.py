"""featurekit extract DATA --backbone NAME [--weights FILE|random] --out CACHE [--commit-every N]"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from featurekit.cli.options import (
    add_preprocess_options,
    add_runtime_options,
    add_source_options,
    comma_names,
    extraction_settings,
    img_sizes,
    preprocess_overrides,
    source_options,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("extract", help="embed images with a frozen backbone into an HDF5 cache")
    p.add_argument(
        "data", type=Path, help="a class-per-subfolder folder, a CSV manifest, an .npz or a folder"
    )
    p.add_argument("--backbone", required=True, help="a timm model name (see `featurekit list backbones`)")
    p.add_argument("--weights", help="a checkpoint FILE, or 'random' (default: offline package, else hub)")
    p.add_argument("--out", type=Path, help="cache file (default: cache/<data>__<backbone>__<key>.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache made with other settings")
    p.add_argument(
        "--tta",
        choices=("none", "hflip"),
        default="none",
        help="hflip: average the features of each image and its mirror image (keyed; default none)",
    )
    p.add_argument(
        "--layers",
        help="timm feature layers pooled side by side instead of the pre-logits embedding, "
        "e.g. -1,-2,-3 (negative: from the end; keyed)",
    )
    p.add_argument(
        "--pool", type=comma_names, default=("avg",), help="with --layers: avg, max or avg,max (default: avg)"
    )
    add_source_options(p)
    add_preprocess_options(p)
    add_runtime_options(p)
    g = p.add_argument_group("resilience (never changes the features)")
    g.add_argument(
        "--commit-every",
        type=int,
        default=2048,
        help="rows per committed unit: a crash loses at most one unit; the same command resumes "
        "(default 2048)",
    )
    g.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="an image that cannot be read or decoded: skip it (listed in <cache>.bad-inputs.csv) or stop",
    )
    g.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.10,
        help="exit with status 1 when more than this fraction of inputs was skipped (default 0.10)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api
    from featurekit.backbones.layers import parse_layers
    from featurekit.errors import InvalidInputError

    sizes = img_sizes(args)  # checked before any model work
    if args.pool != ("avg",) and not args.layers:
        raise InvalidInputError(
            "--pool applies to --layers only (the pre-logits embedding has its own pooling); "
            "add e.g. --layers -1 to pool the last feature map"
        )
    report = api.extract(
        args.data,
        backbone=args.backbone,
        weights=args.weights,
        out=args.out,
        preprocess=preprocess_overrides(args),
        source=source_options(args),
        settings=replace(
            extraction_settings(args, tta=args.tta),
            commit_every=args.commit_every,
            on_error=args.on_error,
            max_bad_fraction=args.max_bad_fraction,
        ),
        overwrite=args.overwrite,
        layers=parse_layers(args.layers) if args.layers else (),
        pools=args.pool,
        img_sizes=sizes if len(sizes) > 1 else (),  # one size is a plain preprocess override
    )
    if report.rank:
        print(f"rank {report.rank}: embedded {report.rows} rows; rank 0 wrote them to {report.cache_path}")
        return 0
    resumed = f", {report.resumed} resumed from an interrupted run" if report.resumed else ""
    print(
        f"cache {report.cache_path}: {report.rows} rows "
        f"({report.extracted} extracted, {report.reused} reused{resumed}) in {report.seconds:.1f} s"
    )
    if args.layers or len(sizes) > 1:
        from featurekit.cache import read_provenance
        from featurekit.cache.featureset import block_names

        names = block_names(read_provenance(report.cache_path)[0])
        print(f"feature blocks side by side (fit --features NAME,…): {', '.join(names)}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} input(s), listed in {report.bad_inputs_csv}")
    if report.bad_fraction > args.max_bad_fraction:
        print(
            f"featurekit extract: error: {report.bad_fraction:.1%} of the inputs were skipped, more than "
            f"--max-bad-fraction {args.max_bad_fraction:g}; see {report.bad_inputs_csv} "
            "(the cache holds every good row)",
            file=sys.stderr,
        )
        return 1
    return 0
