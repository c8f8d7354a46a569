"""The journal: extraction work committed in units, beside the cache, until it is consolidated.

`<cache>.parts/` holds `meta.json` (the provenance the units were made with) and one small HDF5
file per committed unit (`unit-<rank>-<seq>.h5`): features, row identities (content sha256 + box)
and the rows that failed to decode, with a sha256 of its contents. Each unit is written under a
temporary name, fsynced and renamed, so a crash loses at most the unit in flight; a rerun reads
the committed units and extracts only what is missing. `extract` consolidates cache + journal into
a new cache file (atomically) and then removes the journal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featurekit.cache import faults
from featurekit.cache.atomic import TMP_MARK, replacing
from featurekit.cache.checksum import unit_digest
from featurekit.cache.provenance import first_difference
from featurekit.cache.runs import DECODER_DTYPE, DECODERS, RowsMade, concat, unrecorded_run
from featurekit.errors import CacheDamagedError, ProvenanceMismatchError

logger = logging.getLogger(__name__)

JOURNAL_FORMAT = "featurekit-journal"
_UNIT_NAME = re.compile(r"^unit-(\d+)-(\d+)\.h5$")
_STR = h5py.string_dtype(encoding="utf-8")
Made = tuple[dict[str, Any], np.ndarray]  # a unit's run record and per-row decoder codes


def journal_dir(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".parts")


@dataclass(frozen=True)
class FailedRow:
    """A row that could not be embedded, as the journal keeps it (no torch types here)."""

    key: str
    path: str
    stage: str
    reason: str


class UnitFeatures(Mapping[str, np.ndarray]):
    """Row identity → feature vector, read from the committed units when asked for.

    `Journal.read` verifies every unit once and keeps only where each row is, so a journal of a
    million rows is not held in memory while the rest is extracted or while it is consolidated.
    The units read last are kept: consolidation asks for rows in source order, which is the units'
    order (one rank) or round-robin over the ranks' units (several), so a few units per rank hold
    every row it asks for next.
    """

    def __init__(self) -> None:
        self._paths: list[Path] = []
        self._where: dict[str, tuple[int, int]] = {}
        self._unit_run: list[dict[str, Any]] = []  # per unit: the record of the run that made it
        self._unit_decoder: list[np.ndarray] = []  # per unit: (n,) uint8 decoder codes
        self._loaded: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ranks: set[str] = set()
        self._keep_all = False  # set by plan_reads when the rows come far from the units' order

    def add_unit(self, path: Path, keys: Sequence[str], made: Made | None = None) -> None:
        """A verified unit's rows; `made`: its run record and per-row decoder codes (None: unrecorded)."""
        unit = len(self._paths)
        self._paths.append(path)
        run, decoder = made if made is not None else (unrecorded_run(None), np.zeros(len(keys), np.uint8))
        self._unit_run.append(run)
        self._unit_decoder.append(decoder)
        match = _UNIT_NAME.match(path.name)
        self._ranks.add(match.group(1) if match else "")
        for row, key in enumerate(keys):
            self._where[key] = (unit, row)

    @property
    def _keep_units(self) -> int:
        return len(self._paths) if self._keep_all else max(4, 2 * len(self._ranks))

    def plan_reads(self, keys: Sequence[str], block: int) -> None:
        """Prepare to be asked for `keys` in this order, `block` keys at a time (`take`).

        In source order each block needs a unit or two (per rank) and the few kept units serve it.
        Rows far from that order (a source re-sorted before a resume) would make every block read
        most units again: then every unit is kept once read, as when the journal was read whole.
        """
        units = np.array([self._where[k][0] for k in keys], dtype=np.int64)
        reads = sum(len(np.unique(units[a : a + block])) for a in range(0, len(units), block))
        if reads > 2 * len(self._paths) + 8:
            logger.info(
                "the journal's rows are far from the source's order; reading its %d units into memory",
                len(self._paths),
            )
            self._keep_all = True

    def take(self, keys: Sequence[str]) -> np.ndarray:
        """The features of `keys`, in order, (len(keys), D): each unit they need is read once."""
        where = np.array([self._where[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        out: np.ndarray | None = None
        order = np.argsort(where[:, 0], kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(where[order, 0])) + 1):
            if not len(group):
                continue
            features = self._unit(int(where[group[0], 0]))
            if out is None:
                out = np.empty((len(keys), features.shape[1]), dtype=np.float32)
            out[group] = features[where[group, 1]]
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def made(self, keys: Sequence[str]) -> RowsMade:
        """The run and decoder of each of `keys`, in order; units of one run share its record
        (`runs.concat` merges them by id, their batch sizes united)."""
        where = np.array([self._where[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        sizes = np.array([len(d) for d in self._unit_decoder], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        every = np.concatenate(self._unit_decoder) if self._unit_decoder else np.empty(0, np.uint8)
        decoder = every[offsets[where[:, 0]] + where[:, 1]] if len(where) else np.empty(0, np.uint8)
        by_unit = RowsMade(
            runs=self._unit_run, run=where[:, 0].astype(np.int32), decoder=decoder.astype(np.uint8)
        )
        return concat([by_unit])

    def _unit(self, unit: int) -> np.ndarray:
        features = self._loaded.get(unit)
        if features is None:
            features, _, _, _ = read_unit(self._paths[unit])  # verified again: it left memory
            self._loaded[unit] = features
            if len(self._loaded) > self._keep_units:
                self._loaded.popitem(last=False)
        else:
            self._loaded.move_to_end(unit)
        return features

    def __getitem__(self, key: str) -> np.ndarray:
        unit, row = self._where[key]
        return self._unit(unit)[row]

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


@dataclass
class JournalContents:
    """Everything the committed units hold, by row identity (features read on demand)."""

    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, FailedRow] = field(default_factory=dict)
    units: int = 0
    damaged: list[str] = field(default_factory=list)  # "unit-0-000003.h5: reason"

    def __len__(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class UnitProblem:
    path: Path
    reason: str


class Journal:
    """The committed units of one cache (one writer at a time: hold the CacheLock)."""

    def __init__(self, cache_path: Path, *, rank: int = 0) -> None:
        self.cache_path = Path(cache_path)
        self.dir = journal_dir(self.cache_path)
        self.rank = rank
        self._next_seq: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.dir / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable meta: treated as foreign
        return meta if isinstance(meta, dict) else {}

    def start(self, *, provenance: dict[str, Any], key: str, overwrite: bool) -> None:
        """Open (or create) the journal for work made with `provenance`.

        A journal left by an interrupted run with other settings is refused (naming the setting)
        unless `overwrite`, which discards it.
        """
        meta = self.meta()
        if meta is not None and meta.get("provenance_key") != key:
            if not overwrite:
                diff = first_difference(meta.get("provenance", {}), provenance)
                what = f"{diff[0]}: it has {diff[1]!r}, requested {diff[2]!r}" if diff else "unreadable"
                raise ProvenanceMismatchError(
                    f"{self.dir} holds unfinished work made with other settings ({what}); refusing to "
                    "mix them. Rerun with the settings it was made with to finish it, or pass "
                    "--overwrite to discard it."
                )
            self.remove()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.remove_temporaries()
        if meta is None or meta.get("provenance_key") != key:
            record = {"format": JOURNAL_FORMAT, "provenance_key": key, "provenance": provenance}
            with replacing(self.dir / "meta.json") as tmp:
                tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")

    def remove_temporaries(self) -> None:
        if self.dir.is_dir():
            for leftover in self.dir.glob(f".*{TMP_MARK}*"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def remove_if_empty(self) -> None:
        """Remove the journal when it holds no committed unit (nothing to resume)."""
        if self.dir.is_dir() and not self.unit_paths():
            self.remove()

    def unit_paths(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if _UNIT_NAME.match(p.name))

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        *,
        features: np.ndarray,
        keys: Sequence[str],
        paths: Sequence[str],
        failures: Sequence[FailedRow] = (),
        run: dict[str, Any] | None = None,
        decoder: np.ndarray | None = None,
    ) -> Path:
        """Write one unit atomically and return its path. `run`: the record of the run that made it;
        `decoder`: each row's decoder code (runs.DECODERS); either absent reads back as unrecorded."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape[0] != len(keys) or len(keys) != len(paths):
            raise ValueError(f"unit of {features.shape[0]} features, {len(keys)} keys, {len(paths)} paths")
        if decoder is not None and len(decoder) != len(keys):
            raise ValueError(f"unit of {len(keys)} rows with {len(decoder)} decoder codes")
        path = self.dir / f"unit-{self.rank}-{self._take_seq():06d}.h5"
        with replacing(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = JOURNAL_FORMAT
            f.attrs["sha256"] = unit_digest(features, keys)
            f.create_dataset("features", data=features)
            f.create_dataset("key", data=np.array(list(keys), dtype=object), dtype=_STR)
            f.create_dataset("path", data=np.array(list(paths), dtype=object), dtype=_STR)
            bad = np.array([[b.key, b.path, b.stage, b.reason] for b in failures], dtype=object)
            f.create_dataset("failed", data=bad.reshape(-1, 4), dtype=_STR)
            if run is not None:
                f.attrs["run"] = json.dumps(run, sort_keys=True)
            if decoder is not None:
                f.create_dataset("decoder", data=np.asarray(decoder, dtype=np.uint8), dtype=DECODER_DTYPE)
        faults.crash_point("unit-committed")
        return path

    def _take_seq(self) -> int:
        if self._next_seq is None:
            mine = [
                int(m.group(2))
                for p in self.unit_paths()
                if (m := _UNIT_NAME.match(p.name)) and int(m.group(1)) == self.rank
            ]
            self._next_seq = max(mine, default=0) + 1
        seq = self._next_seq
        self._next_seq += 1
        return seq

    # ------------------------------------------------------------------ reading

    def read(self) -> JournalContents:
        """Every committed unit whose checksum holds; damaged units are named and left out."""
        features = UnitFeatures()
        contents = JournalContents(features=features)
        older_units_run = unrecorded_run((self.meta() or {}).get("provenance"))
        for path in self.unit_paths():
            try:
                _, keys, _, failed, made = _read_unit(path)
            except UnitDamaged as exc:
                logger.warning("%s; its rows will be extracted again", exc)
                contents.damaged.append(str(exc))
                continue
            contents.units += 1
            if made is None:  # a unit of a featurekit that did not record runs
                made = (older_units_run, np.zeros(len(keys), np.uint8))
            features.add_unit(path, keys, made)
            for bad in failed:
                contents.failures[bad.key] = bad
        return contents

    def verify(self) -> list[UnitProblem]:
        problems = []
        for path in self.unit_paths():
            try:
                read_unit(path)
            except UnitDamaged as exc:
                problems.append(UnitProblem(path=path, reason=exc.reason))
        return problems


class UnitDamaged(CacheDamagedError):
    """A journal unit that cannot be read or fails its checksum. When the journal is read its rows
    are extracted again; found later (changed while consolidating) it stops the run, cache untouched."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"journal unit {path.name} is damaged ({reason})")
        self.path = path
        self.reason = reason


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in dataset[()].reshape(-1)]


def read_unit(path: Path) -> tuple[np.ndarray, list[str], list[str], list[FailedRow]]:
    """(features, keys, paths, failures) of one unit; UnitDamaged when it is unreadable or altered."""
    features, keys, paths, failures, _ = _read_unit(path)
    return features, keys, paths, failures


def _read_unit(path: Path) -> tuple[np.ndarray, list[str], list[str], list[FailedRow], Made | None]:
    """`read_unit` and the unit's run record and decoder codes, from one opening of the file. The
    record is None for a unit of an older featurekit, and for a damaged record (with a warning:
    it is metadata, outside the checksum, so it never costs the unit's features)."""
    raw: tuple[Any, Any] | str
    try:
        with h5py.File(path, "r") as f:
            features = f["features"][()]
            keys = _strings(f["key"])
            paths = _strings(f["path"])
            failed = _strings(f["failed"])
            expected = str(f.attrs["sha256"])
            try:
                raw = (f.attrs.get("run"), f["decoder"][()] if "decoder" in f else None)
            except Exception as exc:
                raw = f"unreadable: {type(exc).__name__}: {exc}"
    except Exception as exc:  # truncated / not HDF5 / missing datasets: all mean "damaged"
        raise UnitDamaged(path, f"unreadable: {type(exc).__name__}: {exc}") from None
    if features.shape[0] != len(keys) or unit_digest(features, keys) != expected:
        raise UnitDamaged(path, "checksum mismatch")
    failures = [FailedRow(*failed[i : i + 4]) for i in range(0, len(failed), 4)]
    made, problem = (None, raw) if isinstance(raw, str) else _parse_made(raw, len(keys))
    if problem:
        logger.warning("journal unit %s: %s; its rows' run reads as unrecorded", path.name, problem)
    return features, keys, paths, failures, made


def _parse_made(raw: tuple[Any, Any], rows: int) -> tuple[Made | None, str]:
    """(run record, decoder codes) from a unit's raw `run` attribute and `decoder` dataset, and what
    is wrong with them ("" when nothing is)."""
    run, decoder = raw
    if run is None and decoder is None:
        return None, ""
    try:
        record = json.loads(run) if run is not None else unrecorded_run(None)
    except ValueError:
        return None, "its run record is not JSON"
    codes = np.asarray(decoder, dtype=np.uint8) if decoder is not None else np.zeros(rows, np.uint8)
    if not isinstance(record, dict) or codes.shape != (rows,) or (codes >= len(DECODERS)).any():
        return None, "its run record or decoder column does not match its rows"
    return (record, codes), ""
