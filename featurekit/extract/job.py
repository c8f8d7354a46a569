"""An extraction job on one cache: embed the missing rows into journal units, then consolidate.

`api.extract` wires it: lock → check provenance → plan (cache + journal + what is left) →
`embed_into_journal` → `consolidate`. Each step is safe to kill: units are committed atomically,
the consolidated cache replaces the old one atomically, and the journal is removed only after.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Generator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from featurekit.backbones import Backbone
from featurekit.cache import CachedRows, RowTable, checksum, faults, write_cache_blocks
from featurekit.cache.journal import FailedRow, Journal, JournalContents, UnitDamaged, UnitFeatures
from featurekit.cache.runs import DECODERS, RowsMade, concat
from featurekit.cache.writer import UnitWriter
from featurekit.errors import CacheDamagedError, ExtractionInterrupted, InvalidInputError
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
    run: dict[str, Any] | None = None,
) -> EmbedOutcome:
    """Embed `rows` and commit them to `journal` in units (each with `run`, this run's record, and
    each row's decoder); stop early on a stop request.

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
    writer = UnitWriter(journal, commit_every=settings.commit_every, dim=backbone.feature_dim, run=run)
    with writer:
        try:
            for chunk in chunks:
                failed = [FailedRow(keys[b.row], b.path, b.stage, b.reason) for b in chunk.failures]
                done = [int(r) for r in chunk.rows]
                writer.add(
                    chunk.features,
                    [keys[r] for r in done],
                    [index.paths[r] for r in done],
                    failed,
                    decoder=decoder_codes(chunk.decoded_on_device()),
                    batch_size=chunk.batch_size,
                )
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


def decoder_codes(on_device: np.ndarray) -> np.ndarray:
    """Per-row decoder codes (runs.DECODERS) from the engine's decoded-on-device flags."""
    return np.where(np.asarray(on_device, dtype=bool), DECODERS["gpu"], DECODERS["cpu"]).astype(np.uint8)


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

    from_old = np.array([existing is not None and cached[i] >= 0 for i in kept], dtype=bool)
    journal_keys = [keys[i] for i, old in zip(kept, from_old, strict=True) if not old]
    # Byte-identical images share a key: the first copy's vector is kept for the later ones, so a
    # duplicate never sends the reader back to an old journal unit.
    repeated = {key for key, count in Counter(journal_keys).items() if count > 1}
    seen: dict[str, np.ndarray] = {}
    if isinstance(contents.features, UnitFeatures):
        unique = list(dict.fromkeys(journal_keys))
        contents.features.plan_reads(unique, block=checksum.ROWS_PER_UNIT)  # read now: tests shrink it
    old_rows = cached[np.asarray(kept, dtype=np.int64)[from_old]]
    whole_old = existing is not None and existing.scattered(old_rows)
    made = _rows_made(existing, old_rows, contents, journal_keys, from_old)

    def journal_rows(wanted: list[str]) -> np.ndarray:
        fresh = [k for k in dict.fromkeys(wanted) if k not in seen]
        if isinstance(contents.features, UnitFeatures):
            found = contents.features.take(fresh)
        else:
            found = np.array([contents.features[k] for k in fresh], dtype=np.float32).reshape(len(fresh), dim)
        by_key = dict(zip(fresh, found, strict=True))
        seen.update({k: v.copy() for k, v in by_key.items() if k in repeated})
        return np.array([by_key[k] if k in by_key else seen[k] for k in wanted], dtype=np.float32)

    with existing.reader(whole=whole_old) if existing is not None else nullcontext(None) as take_old:

        def block(start: int, stop: int) -> np.ndarray:
            # One cache unit at a time: neither the old cache nor the journal is held whole.
            positions = np.asarray(kept[start:stop], dtype=np.int64)
            old = from_old[start:stop]
            vectors = np.empty((stop - start, dim), dtype=np.float32)
            if take_old is not None and old.any():
                vectors[old] = take_old(cached[positions[old]])
            if not old.all():
                vectors[~old] = journal_rows([keys[i] for i in positions[~old]]).reshape(-1, dim)
            return vectors

        try:
            kept_rows = rows.subset(kept)
            write_cache_blocks(
                cache_path, dim=dim, block=block, rows=kept_rows, provenance=provenance, made=made
            )
        except UnitDamaged as exc:  # changed since it was verified: the cache is untouched (atomic write)
            raise CacheDamagedError(
                f"{exc} while the cache was being written; the cache was not changed: run the same "
                "command again (that unit's rows are extracted again)"
            ) from exc
    faults.crash_point("cache-committed")
    return Consolidated(kept=kept, failures=failures)


def _rows_made(
    existing: CachedRows | None,
    old_rows: np.ndarray,
    contents: JournalContents,
    journal_keys: list[str],
    from_old: np.ndarray,
) -> RowsMade:
    """The run and decoder of every kept row: from the old cache's record or the journal unit's."""
    old = existing.made.subset(old_rows) if existing is not None else RowsMade.empty()
    if isinstance(contents.features, UnitFeatures):
        new = contents.features.made(journal_keys)
    else:  # features handed in memory (tests): nothing recorded about them
        new = RowsMade.unrecorded(len(journal_keys), None)
    # `old` then `new` hold the kept rows from the old cache and from the journal, each in kept order.
    stacked = np.concatenate([np.flatnonzero(from_old), np.flatnonzero(~from_old)])
    return concat([old, new], order=np.argsort(stacked, kind="stable"))
