"""featurekit cache info|verify|repair CACHE: what a cache holds, whether it is intact, fix it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from featurekit.cli.options import add_runtime_options, extraction_settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("cache", help="inspect, verify or repair a feature cache")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="rows, feature dimension(s), classes and provenance")
    info.add_argument("cache", type=Path)
    info.add_argument("--json", action="store_true", help="one JSON object")
    verify = actions.add_parser("verify", help="check every unit's checksum; exit 1 when damaged")
    verify.add_argument("cache", type=Path)
    verify.add_argument("--json", action="store_true", help="one JSON object")
    repair = actions.add_parser("repair", help="re-extract only the damaged units")
    repair.add_argument("cache", type=Path)
    repair.add_argument("--data", type=Path, help="the images, when they moved (default: the recorded path)")
    add_runtime_options(repair)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api

    if args.action == "info":
        info = api.cache_info(args.cache)
        if args.json:
            print(json.dumps(info, indent=2, sort_keys=True))
            return 0
        for line in _describe(info):
            print(line)
        return 0
    if args.action == "verify":
        report = api.verify_cache(args.cache)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            state = "ok" if report.ok else "DAMAGED"
            print(f"{report.path}: {state}: {report.rows} rows in {report.units} units checked")
            for line in [*report.problems, *map(str, report.damaged)]:
                print(f"  {line}")
            if report.runs_damaged:
                print(f"  {report.runs_damaged} (the features are unaffected)")
            for problem in report.journal_damaged:
                print(f"  journal {problem.path.name}: {problem.reason}")
            if report.extraction_running:
                print("  an extraction is writing this cache now: this is its last complete version")
            if not report.ok:
                print(f"  run `featurekit cache repair {args.cache}` to re-extract only the damaged units")
        return 0 if report.ok else 1
    repaired = api.repair_cache(args.cache, data=args.data, settings=extraction_settings(args))
    print(
        f"{repaired.path}: repaired {repaired.units_repaired} unit(s) ({repaired.rows_reextracted} rows "
        f"re-extracted); removed {repaired.journal_units_removed} damaged journal unit(s)"
    )
    return 0


def _describe(info: dict) -> list[str]:
    provenance = info["provenance"]
    size = provenance.get("preprocess", {}).get("img_size")
    size = ",".join(map(str, size)) if isinstance(size, list) else size  # several input sizes
    lines = [
        f"{info['path']}: {info['rows']} rows × {info['feature_dim']} features "
        f"(format {info['format_version']}, {info['units']} verification units)",
        f"  backbone {provenance.get('backbone')}, {size} px, key {info['provenance_key'][:12]}",
        f"  {len(info['classes'])} classes" + (" (multi-label)" if info["multilabel"] else ""),
    ]
    if len(info["feature_blocks"]) > 1:
        lines.append("  blocks " + ", ".join(f"{k} ({v})" for k, v in info["feature_blocks"].items()))
    runs = info.get("runs") or []
    lines.append(f"  made by {len(runs)} run(s):" if len(runs) != 1 else "  made by 1 run:")
    lines.extend(f"    {_describe_run(run)}" for run in runs)
    if info["unfinished_units"]:
        lines.append(
            f"  {info['unfinished_units']} committed unit(s) of an unfinished extraction: "
            "rerun the same extract command to finish it"
        )
    return lines


def _describe_run(run: dict) -> str:
    """One line per run: when, how many rows, where, how they were decoded, at what batch size."""
    decoded = ", ".join(f"{count} {name}" for name, count in sorted(run.get("decoders", {}).items()))
    if run.get("unrecorded") is True:
        return f"{run.get('rows')} rows made before featurekit recorded runs (decoded: {decoded})"
    resolved = run.get("resolved") or {}
    versions = run.get("versions") or {}
    sizes = ",".join(map(str, run.get("batch_sizes") or [])) or "?"
    rank = f", rank {run.get('rank')} of {run.get('world')}" if (run.get("world") or 1) > 1 else ""
    return (
        f"{run.get('started_at')}: {run.get('rows')} rows on {resolved.get('device')} "
        f"({resolved.get('device_name')}) at {run.get('host')}{rank}, {run.get('precision')}, "
        f"batch {sizes}, decoded: {decoded}; featurekit {versions.get('featurekit')}, "
        f"torch {versions.get('torch')}, timm {versions.get('timm')}"
    )
