"""The HDF5 feature store (schema in docs/cache-format.md).

A cache file is always complete: it is written under a temporary name in the same folder,
flushed and fsynced, then atomically renamed over the target, so a crash leaves either the
old cache or the new one, never a half-written file. Work in progress lives in the journal
(journal.py) until it is consolidated here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featurekit.cache import checksum
from featurekit.cache.atomic import TMP_MARK, remove_matching, replacing
from featurekit.cache.checksum import unit_bounds, unit_digest
from featurekit.cache.featureset import FeatureSet, RowTable
from featurekit.cache.provenance import provenance_key
from featurekit.cache.runs import DECODER_DTYPE, DECODERS, RowsMade
from featurekit.errors import CacheDamagedError, CacheFormatError, PathNotFoundError

FORMAT = "featurekit-cache"
FORMAT_VERSION = 2  # 2: per-unit sha256 table (/units) and fletcher32 on feature chunks
_STR = h5py.string_dtype(encoding="utf-8")
logger = logging.getLogger(__name__)


def write_cache(
    path: Path,
    *,
    features: np.ndarray,
    rows: RowTable,
    provenance: dict[str, Any],
    made: RowsMade | None = None,
) -> Path:
    """Write a complete cache atomically and return its path. `made`: each row's run and decoder
    (runs.py); without it the cache records none (read back as unrecorded)."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != len(rows):
        raise ValueError(f"features {features.shape} do not match {len(rows)} rows")
    return write_cache_blocks(
        path,
        dim=features.shape[1],
        block=lambda start, stop: features[start:stop],
        rows=rows,
        provenance=provenance,
        made=made,
    )


FeatureBlock = Callable[[int, int], np.ndarray]


def write_cache_blocks(
    path: Path,
    *,
    dim: int,
    block: FeatureBlock,
    rows: RowTable,
    provenance: dict[str, Any],
    made: RowsMade | None = None,
) -> Path:
    """`write_cache` with the features given unit by unit: `block(start, stop)` returns the
    (stop - start, dim) features of those rows. Only one unit is in memory at a time, so a
    consolidation of a million rows does not need a second copy of them all."""
    path = Path(path)
    if made is not None and len(made) != len(rows):
        raise ValueError(f"{len(made)} rows' runs recorded for {len(rows)} rows")
    with replacing(path) as tmp, h5py.File(tmp, "w") as f:
        _write_contents(f, dim=dim, block=block, rows=rows, provenance=provenance)
        if made is not None:
            _write_made(f, made)
    return path


def _write_made(f: h5py.File, made: RowsMade) -> None:
    f.attrs["runs"] = json.dumps(made.runs, sort_keys=True)
    f["rows"].create_dataset("run", data=np.asarray(made.run, dtype=np.int32))
    f["rows"].create_dataset("decoder", data=np.asarray(made.decoder, dtype=np.uint8), dtype=DECODER_DTYPE)


def read_made(f: h5py.File, *, strict: bool = False) -> RowsMade:
    """Each row's run and decoder; a cache written before they were recorded: one unrecorded run.

    A damaged record raises CacheDamagedError when `strict` (verify); otherwise it reads as
    unrecorded with a warning: it says how rows were made, not what they are, so it never costs the
    features (an `extract` over the cache rewrites it)."""
    try:
        return _read_made(f)
    except CacheDamagedError as exc:
        if strict:
            raise
        logger.warning("%s; reading every row's run as unrecorded", exc)
        return RowsMade.unrecorded(int(f["features"].shape[0]), json.loads(f.attrs["provenance"]))


def _read_made(f: h5py.File) -> RowsMade:
    n = int(f["features"].shape[0])
    if "runs" not in f.attrs or "run" not in f["rows"]:
        return RowsMade.unrecorded(n, json.loads(f.attrs["provenance"]))
    try:
        runs = json.loads(f.attrs["runs"])
        if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
            raise ValueError("runs is not a list of records")
        group = f["rows"]
        decoder = group["decoder"][()].astype(np.uint8) if "decoder" in group else np.zeros(n, np.uint8)
        if len(decoder) and np.max(decoder) >= len(DECODERS):
            raise ValueError(f"decoder code {np.max(decoder)} is not one of {DECODERS}")
        made = RowsMade(runs=runs, run=group["run"][()].astype(np.int32), decoder=decoder)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise CacheDamagedError(
            f"{f.filename}: the record of which run made each row is damaged ({exc})"
        ) from exc
    if len(made) != n:
        raise CacheDamagedError(f"{f.filename}: rows/run has {len(made)} rows, the cache {n}")
    return made


def _write_contents(
    f: h5py.File, *, dim: int, block: FeatureBlock, rows: RowTable, provenance: dict[str, Any]
) -> None:
    n = len(rows)
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
    f.attrs["provenance_key"] = provenance_key(provenance)
    f.attrs["n_rows"] = n
    bounds = unit_bounds(n)
    # ~1 MiB chunks, a power of two that divides the unit size: a damaged chunk damages one unit only.
    rows_per_unit = bounds[0][1] if bounds else 1
    chunk_rows = 1 << max(0, ((1 << 20) // max(1, dim * 4)).bit_length() - 1)
    chunk_rows = max(1, min(chunk_rows, rows_per_unit, n))
    # fletcher32: every reader, not only `cache verify`, fails loudly on a flipped bit in a chunk.
    dataset = f.create_dataset(
        "features",
        shape=(n, dim),
        dtype=np.float32,
        chunks=(max(1, chunk_rows), max(1, dim)),
        fletcher32=True,
        maxshape=(None, dim),
    )
    keys = rows.row_keys()
    digests = []
    for start, stop in bounds:
        features = np.ascontiguousarray(block(start, stop), dtype=np.float32)
        if features.shape != (stop - start, dim):
            raise ValueError(
                f"features {features.shape} of rows {start}:{stop} are not ({stop - start}, {dim})"
            )
        dataset[start:stop] = features
        digests.append(unit_digest(features, keys[start:stop]))
    f.create_dataset("classes", data=np.array(rows.class_names, dtype=object), dtype=_STR)
    group = f.create_group("rows")
    group.create_dataset("path", data=np.array(rows.paths, dtype=object), dtype=_STR)
    group.create_dataset("content_sha256", data=np.array(rows.content_hashes, dtype="S64"))
    if rows.boxes is not None:
        group.create_dataset("box", data=np.asarray(rows.boxes, dtype=np.float64))
    if rows.labels is not None:
        name = "labels" if rows.labels.ndim == 2 else "label"
        dtype = np.uint8 if rows.labels.ndim == 2 else np.int64
        group.create_dataset(name, data=np.asarray(rows.labels, dtype=dtype))
    for name, column in (("group", rows.groups), ("split", rows.splits)):
        if column is not None:
            group.create_dataset(name, data=np.asarray(column, dtype=object), dtype=_STR)
    units = f.create_group("units")
    units.attrs["rows_per_unit"] = bounds[0][1] if bounds else 0
    units.create_dataset("start", data=np.array([b[0] for b in bounds], dtype=np.int64))
    units.create_dataset("stop", data=np.array([b[1] for b in bounds], dtype=np.int64))
    units.create_dataset("sha256", data=np.array(digests, dtype="S64"))


def open_cache(path: Path) -> h5py.File:
    """The cache opened read-only, its format checked (for verify.py)."""
    return _open(path)


def _open(path: Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(f"cache not found: {path} (create it with `featurekit extract`)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CacheFormatError(f"{path} is not a readable HDF5 file ({exc})") from exc
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise CacheFormatError(f"{path} is an HDF5 file but not a featurekit cache")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        f.close()
        raise CacheFormatError(
            f"{path} uses cache format {version}; this featurekit reads up to {FORMAT_VERSION} "
            "(upgrade featurekit)"
        )
    return f


def read_provenance(path: Path) -> tuple[dict[str, Any], str]:
    """The provenance record and key of a cache, without reading its features."""
    with _open(path) as f:
        return json.loads(f.attrs["provenance"]), str(f.attrs["provenance_key"])


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    return np.array([s.decode("utf-8") if isinstance(s, bytes) else s for s in dataset[()]], dtype=object)


def read_rows(f: h5py.File) -> RowTable:
    group = f["rows"]
    labels: np.ndarray | None = None
    if "label" in group:
        labels = group["label"][()].astype(np.int64)
    elif "labels" in group:
        labels = group["labels"][()].astype(np.uint8)
    return RowTable(
        paths=list(_strings(group["path"])),
        content_hashes=[h.decode("ascii") for h in group["content_sha256"][()]],
        class_names=list(_strings(f["classes"])),
        labels=labels,
        boxes=group["box"][()] if "box" in group else None,
        groups=_strings(group["group"]) if "group" in group else None,
        splits=_strings(group["split"]) if "split" in group else None,
    )


def _damaged(path: Path, exc: OSError) -> CacheDamagedError:
    return CacheDamagedError(
        f"{path}: feature data is damaged ({exc}); `featurekit cache verify {path}` names the "
        f"damaged units and `featurekit cache repair {path}` re-extracts them"
    )


def load_features(path: Path) -> FeatureSet:
    """Read a whole cache into memory as a FeatureSet."""
    with _open(path) as f:
        provenance = json.loads(f.attrs["provenance"])
        try:
            X = f["features"][()]
        except OSError as exc:  # fletcher32 mismatch or a truncated file
            raise _damaged(path, exc) from exc
        return FeatureSet(
            X=X,
            rows=read_rows(f),
            provenance=provenance,
            provenance_key=str(f.attrs["provenance_key"]),
        )


# Rows read at once when a cache is checked through without being kept (~40 MiB at D = 1,280).
_CHECK_ROWS = 8192


@dataclass(frozen=True)
class CachedRows:
    """An existing cache's row table, its features left on disk: `reader()` reads the rows asked for.

    What an extraction that reuses a cache needs: the rows to match (in memory) and, at
    consolidation, the features of the matched rows (read a block at a time), so re-running
    `extract` on a grown dataset does not load a million old rows.
    """

    path: Path
    rows: RowTable
    provenance: dict[str, Any]
    provenance_key: str
    chunk_rows: int  # rows per HDF5 chunk: HDF5 reads (and checksums) whole chunks
    identity: tuple[int, int, int]  # st_dev, st_ino, st_mtime_ns when opened
    made: RowsMade  # each row's run and decoder (kept for the rows reused)

    def scattered(self, indices: np.ndarray) -> bool:
        """Whether reading these rows in this order, a cache unit at a time, would read the file's
        chunks many times over (old rows far from the new order): then `reader(whole=True)`."""
        if not len(indices):
            return False
        chunks = np.asarray(indices, dtype=np.int64) // max(1, self.chunk_rows)
        step = checksum.ROWS_PER_UNIT  # read now: tests shrink units
        reads = sum(len(np.unique(chunks[a : a + step])) for a in range(0, len(chunks), step))
        return reads > 2 * (-(-len(self.rows) // max(1, self.chunk_rows))) + 8

    @contextmanager
    def reader(self, *, whole: bool = False) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
        """`take(indices)` → the (len(indices), D) features of those rows, in that order. `whole`
        reads the features once into memory first (for rows asked for far out of order)."""
        if _identity(self.path) != self.identity:
            raise CacheDamagedError(
                f"{self.path} was replaced while this extraction ran (featurekit holds its lock, so "
                "something else wrote it); nothing was changed: run the same command again"
            )
        with _open(self.path) as f:
            dataset = f["features"]
            if whole:
                try:
                    X = dataset[()]
                except OSError as exc:
                    raise _damaged(self.path, exc) from exc
                yield lambda indices: np.asarray(X[np.asarray(indices, dtype=np.int64)], dtype=np.float32)
                return

            def take(indices: np.ndarray) -> np.ndarray:
                indices = np.asarray(indices, dtype=np.int64)
                if not len(indices):
                    return np.empty((0, dataset.shape[1]), dtype=np.float32)
                wanted = np.unique(indices)  # sorted, as h5py's point selection needs
                try:
                    if wanted[-1] - wanted[0] < 4 * len(wanted):  # near-consecutive: one slice
                        block = dataset[wanted[0] : wanted[-1] + 1][wanted - wanted[0]]
                    else:
                        block = dataset[wanted]
                except OSError as exc:
                    raise _damaged(self.path, exc) from exc
                return np.asarray(block[np.searchsorted(wanted, indices)], dtype=np.float32)

            yield take


def _identity(path: Path) -> tuple[int, int, int]:
    stat = Path(path).stat()
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


def open_cached_rows(path: Path) -> CachedRows:
    """The cache's rows and provenance, its features checked through once (HDF5 verifies every
    chunk's fletcher32, so a damaged cache is refused now, not at consolidation) but not kept."""
    path = Path(path)
    identity = _identity(path)
    with _open(path) as f:
        dataset = f["features"]
        try:
            for start in range(0, dataset.shape[0], _CHECK_ROWS):
                dataset[start : start + _CHECK_ROWS]
        except OSError as exc:
            raise _damaged(path, exc) from exc
        return CachedRows(
            path=path,
            rows=read_rows(f),
            provenance=json.loads(f.attrs["provenance"]),
            provenance_key=str(f.attrs["provenance_key"]),
            chunk_rows=int(dataset.chunks[0]) if dataset.chunks else max(1, dataset.shape[0]),
            identity=identity,
            made=read_made(f),
        )


def cache_info(path: Path) -> dict[str, Any]:
    """A JSON-ready summary of what a cache holds (and of unfinished work in its journal)."""
    from featurekit.cache.featureset import block_names
    from featurekit.cache.journal import Journal

    with _open(path) as f:
        rows = read_rows(f)
        provenance = json.loads(f.attrs["provenance"])
        info = {
            "path": str(path),
            "format_version": int(f.attrs["format_version"]),
            "rows": int(f["features"].shape[0]),
            "feature_dim": int(f["features"].shape[1]),
            "feature_blocks": {
                block["name"]: block["stop"] - block["start"]
                for block in provenance.get("features", {}).get("layout", [])
            },
            "classes": rows.class_names,
            "multilabel": rows.multilabel,
            "has_boxes": rows.boxes is not None,
            "units": int(f["units/start"].shape[0]) if "units" in f else 0,
            "size_bytes": Path(path).stat().st_size,
            "provenance_key": str(f.attrs["provenance_key"]),
            "provenance": provenance,
            "runs": read_made(f).summary(),
        }
    info["feature_blocks"] = info["feature_blocks"] or {
        name: info["feature_dim"] for name in block_names(provenance)
    }
    journal = Journal(Path(path))
    info["unfinished_units"] = len(journal.unit_paths())
    return info


def remove_temporaries(cache_path: Path) -> list[Path]:
    """Delete what crashed writers of this cache left (`.NAME.tmp-PID`, `.NAME.bad-inputs.csv.tmp-PID`).

    Call it only while holding the cache's lock: then no live writer owns them.
    """
    cache_path = Path(cache_path)
    removed = remove_matching(cache_path.parent, f"{cache_path.name}{TMP_MARK}")
    removed += remove_matching(cache_path.parent, f"{cache_path.name}.bad-inputs.csv{TMP_MARK}")
    return removed
