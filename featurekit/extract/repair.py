"""`featurekit cache repair`: re-extract only the damaged units of a cache, then rewrite it atomically.

Damaged journal units (an unfinished extraction) are deleted: the next `extract` redoes their
rows. Damaged units of the cache itself are re-embedded from the source images, found by content
(sha256 + box) in the recorded data (or `data=`), with the backbone rebuilt from the provenance;
an image that changed since is an error, never silently different features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from featurekit.cache import RowTable, read_provenance, write_cache
from featurekit.cache.lock import CacheLock
from featurekit.cache.runs import RowsMade
from featurekit.cache.store import open_cache, read_made, read_rows
from featurekit.cache.verify import verify_cache
from featurekit.errors import CacheDamagedError, InvalidInputError
from featurekit.extract.engine import (
    ExtractionSettings,
    extract_features,
    model_rewrites,
    resolve_device,
    resolve_precision,
    resolved_runtime,
)
from featurekit.extract.job import decoder_codes
from featurekit.extract.provenance import build_run_record
from featurekit.extract.rebuild import rebuild_backbone
from featurekit.images import SourceOptions, content_hashes, load_image_index

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairReport:
    path: Path
    units_repaired: int
    rows_reextracted: int
    journal_units_removed: int


def _source_options(recorded: dict[str, Any]) -> SourceOptions:
    options = dict(recorded.get("source_options") or {})
    for name in ("class_columns", "box_columns"):
        if isinstance(options.get(name), list):
            options[name] = tuple(options[name])
    return SourceOptions(**options)


def repair_cache(
    path: Path, *, data: Path | None = None, settings: ExtractionSettings | None = None
) -> RepairReport:
    path = Path(path)
    with CacheLock(path):
        report = verify_cache(path)
        for problem in report.journal_damaged:
            problem.path.unlink(missing_ok=True)
            logger.warning("removed damaged journal unit %s; `extract` will redo its rows", problem.path.name)
        if report.problems:
            raise CacheDamagedError(f"{path} cannot be repaired unit by unit: {'; '.join(report.problems)}")
        if not report.damaged and not report.runs_damaged:
            return RepairReport(path, 0, 0, len(report.journal_damaged))
        provenance, key = read_provenance(path)
        with open_cache(path) as f:
            rows = read_rows(f)
            made = read_made(f)  # a damaged record reads as unrecorded, and is rewritten so
            features = np.empty(f["features"].shape, dtype=np.float32)
            damaged_rows = np.zeros(len(rows), dtype=bool)
            for unit in report.damaged:
                damaged_rows[unit.start : unit.stop] = True
            for start, stop in zip(f["units/start"][()], f["units/stop"][()], strict=True):
                if not damaged_rows[int(start)]:
                    features[int(start) : int(stop)] = f["features"][int(start) : int(stop)]
        redo = np.flatnonzero(damaged_rows)
        if len(redo):
            features[redo], redone = _reembed(
                rows, redo, provenance=provenance, key=key, data=data, settings=settings
            )
            made = redone.into(made, redo)
        write_cache(path, features=features, rows=rows, provenance=provenance, made=made)
        return RepairReport(path, len(report.damaged), len(redo), len(report.journal_damaged))


def _reembed(
    rows: RowTable,
    redo: np.ndarray,
    *,
    provenance: dict[str, Any],
    key: str,
    data: Path | None,
    settings: ExtractionSettings | None,
) -> tuple[np.ndarray, _Redone]:
    """The features of rows `redo`, in order, and how they were made (the repair's own run)."""
    extraction = provenance.get("extraction", {})
    source = Path(data) if data is not None else Path(extraction.get("data", ""))
    if not str(source) or not source.exists():
        raise InvalidInputError(
            f"the images this cache was made from are not at {str(source)!r}; pass --data with their "
            "folder, CSV or npz"
        )
    index = load_image_index(source, _source_options(extraction))
    by_key = {k: i for i, k in enumerate(RowTable.from_index(index, content_hashes(index)).row_keys())}
    wanted_keys = [rows.row_keys()[i] for i in redo]
    missing = [rows.paths[i] for i, k in zip(redo, wanted_keys, strict=True) if k not in by_key]
    if missing:
        raise InvalidInputError(
            f"{len(missing)} image(s) of the damaged units are not in {source} with the same content "
            f"(changed or removed since extraction), e.g. {', '.join(missing[:3])}; "
            "re-extract with --overwrite"
        )
    backbone = rebuild_backbone(provenance, expected_key=key, what="this cache")
    settings = replace(
        settings or ExtractionSettings(),
        amp=provenance["precision"] == "bfloat16",
        tta=provenance["features"].get("tta", "none"),
    )
    source_rows = [by_key[k] for k in wanted_keys]
    device = resolve_device(settings.device)
    requested = {
        **settings.runtime_record(),
        **model_rewrites(backbone, device, resolve_precision(device, settings.amp)),
        "repair_of": str(source),
    }
    run = build_run_record(
        {**provenance, "extraction": requested}, resolved=resolved_runtime(backbone, settings, device)
    )
    result = extract_features(backbone, index, rows=source_rows, settings=settings)
    if result.failures:
        bad = result.failures[0]
        raise InvalidInputError(f"{bad.path}: {bad.stage} failed while repairing ({bad.reason})")
    position = {int(r): k for k, r in enumerate(result.rows)}
    order = [position[r] for r in source_rows]
    if result.batch_sizes:
        run["batch_sizes"] = list(result.batch_sizes)
    on_device = result.on_device if result.on_device is not None else np.zeros(len(result.rows), bool)
    return result.features[order], _Redone(run=run, decoder=decoder_codes(on_device[order]))


@dataclass(frozen=True)
class _Redone:
    run: dict[str, Any]
    decoder: np.ndarray  # per re-extracted row

    def into(self, made: RowsMade, redo: np.ndarray) -> RowsMade:
        """`made` with rows `redo` now made by this repair."""
        run, decoder = made.run.copy(), made.decoder.copy()
        run[redo] = len(made.runs)
        decoder[redo] = self.decoder
        return RowsMade(runs=[*made.runs, self.run], run=run, decoder=decoder).compact()
