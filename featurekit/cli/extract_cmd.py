"""featurekit extract DATA --backbone NAME [--weights FILE|random] --out CACHE"""

from __future__ import annotations

import argparse
from pathlib import Path

from featurekit.cli.options import (
    add_preprocess_options,
    add_runtime_options,
    add_source_options,
    comma_names,
    extraction_settings,
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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api
    from featurekit.backbones.layers import parse_layers

    report = api.extract(
        args.data,
        backbone=args.backbone,
        weights=args.weights,
        out=args.out,
        preprocess=preprocess_overrides(args),
        source=source_options(args),
        settings=extraction_settings(args, tta=args.tta),
        overwrite=args.overwrite,
        layers=parse_layers(args.layers) if args.layers else (),
        pools=args.pool,
    )
    if report.rank:
        print(f"rank {report.rank}: embedded {report.rows} rows; rank 0 wrote them to {report.cache_path}")
        return 0
    print(
        f"cache {report.cache_path}: {report.rows} rows "
        f"({report.extracted} extracted, {report.reused} reused) in {report.seconds:.1f} s"
    )
    if args.layers:
        from featurekit.cache import read_provenance
        from featurekit.cache.featureset import block_names

        names = block_names(read_provenance(report.cache_path)[0])
        print(f"feature blocks side by side (fit --features NAME,…): {', '.join(names)}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} input(s), listed in {report.bad_inputs_csv}")
    return 0
