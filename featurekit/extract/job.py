"""An extraction job on one cache: embed the missing rows into journal units, then consolidate.

`api.extract` wires it: lock → check provenance → plan (cache + journal + what is left) →
`embed_into_journal` → `consolidate`. Each step is safe to kill: units are committed atomically,
the consolidated cache replaces the old one atomically, and the journal is removed only after.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from featurekit.backbones import Backbone
from featurekit.cache import CachedRows, RowTable, faults, write_cache_blocks
from featurekit.cache.journal import FailedRow, Journal, JournalContents
from featurekit.cache.writer import UnitWriter
from featurekit.errors import ExtractionInterrupted, InvalidInputError
from featurekit.extract.dataset import BadInput
from featurekit.extract.engine import ExtractionSettings, FeatureChunk, iter_feature_chunks
from featurekit.extract.interrupt import StopRequest
from featurekit.images.index import ImageIndex

logger = logging.getLogger(__name__)

ON_ERROR = ("skip", "fail")


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error {on_error!r} is not one of {', '.join(ON_ERROR)}")


@dataclass
class EmbedOutcome:
    rows: int = 0  # rows embedded (committed) by this process in this run
    failures: list[BadInput] = field(default_factory=list)


def embed_into_journal(
    backbone: Backbone,
    index: ImageIndex,
    *,
    rows: Sequence[int],
    keys: Sequence[str],
    journal: Journal,
    settings: ExtractionSettings,
    stop: StopRequest,
) -> EmbedOutcome:
    """Embed `rows` and commit them to `journal` in units; stop early on a stop request.

    Raises ExtractionInterrupted after committing what was embedded when a signal arrived, and
    InvalidInputError at the first bad image with `on_error="fail"` (after committing too).
    """
    outcome = EmbedOutcome()
    if not rows:
        return outcome
    chunks = cast(
        Generator[FeatureChunk, None, None],
        iter_feature_chunks(backbone, index, rows=rows, settings=settings),
    )
    first_bad: BadInput | None = None
    with UnitWriter(journal, commit_every=settings.commit_every, dim=backbone.feature_dim) as writer:
        try:
            for chunk in chunks:
                failed = [FailedRow(keys[b.row], b.path, b.stage, b.reason) for b in chunk.failures]
                done = [int(r) for r in chunk.rows]
                writer.add(chunk.features, [keys[r] for r in done], [index.paths[r] for r in done], failed)
                outcome.rows += len(done)
                outcome.failures.extend(chunk.failures)
                if chunk.failures and settings.on_error == "fail":
                    first_bad = chunk.failures[0]
                    break
                if stop.requested:
                    break
        except Exception:
            # A signal can also kill loader workers mid-batch; that is the interruption, not a bug.
            if not stop.requested:
                raise
        finally:
            chunks.close()
    committed = writer.committed_rows
    if first_bad is not None:
        raise InvalidInputError(
            f"{first_bad.path}: {first_bad.stage} failed ({first_bad.reason}); stopped because of "
            f"--on-error fail ({committed} rows committed; fix or remove the file and run the same "
            "command to resume, or pass --on-error skip to skip bad images)"
        )
    if stop.requested:
        raise ExtractionInterrupted(
            f"interrupted by {stop.signal_name}: {committed} rows embedded in this run are committed "
            f"in {journal.dir}; run the same command again to resume (only the rest is extracted)",
            exit_code=stop.exit_code,
        )
    return outcome


@dataclass(frozen=True)
class Consolidated:
    kept: list[int]  # rows of the request that are in the new cache
    failures: list[BadInput]  # rows that are not (decode failures recorded in the journal)


def consolidate(
    cache_path: Path,
    *,
    rows: RowTable,
    cached: np.ndarray,
    existing: CachedRows | None,
    contents: JournalContents,
    dim: int,
    provenance: dict[str, Any],
) -> Consolidated:
    """Write the cache: every requested row, in request order, from the old cache or the journal.

    `cached[i]` is the old cache's row for request row i (or -1). Rows in neither are left out
    (their failure, when the journal has one, is returned).
    """
    keys = rows.row_keys()
    kept: list[int] = []
    failures: list[BadInput] = []
    for i, key in enumerate(keys):
        if not ((cached[i] >= 0 and existing is not None) or key in contents.features):
            bad = contents.failures.get(key)
            if bad is not None:
                failures.append(BadInput(row=i, path=rows.paths[i], stage=bad.stage, reason=bad.reason))
            continue
        kept.append(i)

    with existing.reader() if existing is not None else nullcontext(None) as take_old:

        def block(start: int, stop: int) -> np.ndarray:
            # One cache unit at a time: neither the old cache nor the journal is held whole.
            positions = kept[start:stop]
            old = [j for j, i in enumerate(positions) if take_old is not None and cached[i] >= 0]
            vectors = np.empty((stop - start, dim), dtype=np.float32)
            if take_old is not None and old:
                vectors[old] = take_old(cached[[positions[j] for j in old]])
            reused = set(old)
            for j, i in enumerate(positions):
                if j not in reused:
                    vectors[j] = contents.features[keys[i]]
            return vectors

        write_cache_blocks(cache_path, dim=dim, block=block, rows=rows.subset(kept), provenance=provenance)
    faults.crash_point("cache-committed")
    return Consolidated(kept=kept, failures=failures)
