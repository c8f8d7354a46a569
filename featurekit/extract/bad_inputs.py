"""The bad-inputs report: one CSV row per image that was skipped, beside the cache."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from featurekit.cache.atomic import replacing
from featurekit.extract.dataset import BadInput


def bad_inputs_path(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".bad-inputs.csv")


def write_bad_inputs(path: Path, failures: Iterable[BadInput]) -> Path | None:
    """Write (atomically) the CSV of skipped inputs; remove a stale one when there are none."""
    failures = list(failures)
    if not failures:
        path.unlink(missing_ok=True)
        return None
    with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "row", "stage", "reason"])
        for bad in failures:
            writer.writerow([bad.path, bad.row, bad.stage, bad.reason])
    return path
