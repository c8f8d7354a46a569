"""`featurekit cache verify`: check a cache's stored checksums and its consistency, unit by unit.

Each verification unit (a block of rows, `/units` in the file) is re-read and its sha256 recomputed;
HDF5's fletcher32 checksum on every feature chunk also turns a flipped bit into a read error, which
names the unit too. The journal of an unfinished extraction, when there is one, is checked as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featurekit.cache.checksum import unit_digest
from featurekit.cache.journal import Journal, UnitProblem
from featurekit.cache.lock import is_locked
from featurekit.cache.store import open_cache, read_made, read_rows
from featurekit.errors import CacheDamagedError


@dataclass(frozen=True)
class DamagedUnit:
    unit: int
    start: int
    stop: int
    reason: str
    first_path: str = ""

    def __str__(self) -> str:
        where = f" (first image {self.first_path})" if self.first_path else ""
        return f"unit {self.unit}, rows {self.start}-{self.stop - 1}{where}: {self.reason}"


@dataclass
class VerifyReport:
    path: Path
    rows: int = 0
    units: int = 0
    damaged: list[DamagedUnit] = field(default_factory=list)
    journal_damaged: list[UnitProblem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # whole-file problems (unreadable, inconsistent)
    runs_damaged: str = ""  # the record of each row's run (runs.py) is damaged: `cache repair` rewrites it
    journal_units: int = 0
    extraction_running: bool = False

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.journal_damaged or self.problems or self.runs_damaged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "rows": self.rows,
            "units": self.units,
            "damaged_units": [
                {
                    "unit": d.unit,
                    "start": d.start,
                    "stop": d.stop,
                    "reason": d.reason,
                    "first_path": d.first_path,
                }
                for d in self.damaged
            ],
            "damaged_journal_units": [
                {"file": p.path.name, "reason": p.reason} for p in self.journal_damaged
            ],
            "problems": self.problems,
            "runs_damaged": self.runs_damaged,
            "journal_units": self.journal_units,
            "extraction_running": self.extraction_running,
        }


def verify_cache(path: Path) -> VerifyReport:
    """Check every unit of the cache at `path` (and of its journal); never raises on damage."""
    path = Path(path)
    report = VerifyReport(path=path)
    journal = Journal(path)
    report.journal_units = len(journal.unit_paths())
    report.journal_damaged = journal.verify()
    report.extraction_running = is_locked(path)
    if not path.exists():
        if not report.journal_units:
            report.problems.append(f"{path} does not exist")
        return report
    try:
        f = open_cache(path)
    except Exception as exc:
        report.problems.append(f"the file cannot be opened ({exc}); re-extract with --overwrite")
        return report
    with f:
        try:
            rows = read_rows(f)
            features = f["features"]
            n = int(features.shape[0])
        except Exception as exc:
            report.problems.append(
                f"row metadata unreadable ({type(exc).__name__}: {exc}); re-extract with --overwrite"
            )
            return report
        report.rows = n
        lengths = {
            "features": n,
            "rows/path": len(rows.paths),
            "n_rows attribute": int(f.attrs.get("n_rows", n)),
        }
        if rows.labels is not None:
            lengths["rows/label(s)"] = int(rows.labels.shape[0])
        if len(set(lengths.values())) > 1:
            report.problems.append(
                "inconsistent lengths: " + ", ".join(f"{k} {v}" for k, v in lengths.items())
            )
            return report
        try:
            read_made(f, strict=True)  # its lengths, run indices and decoder codes
        except CacheDamagedError as exc:  # metadata only: the features are still checked below
            report.runs_damaged = str(exc)
        if "units" not in f:
            report.problems.append(
                "format 1 cache: no unit checksums to verify (re-extract to upgrade; rows are reused)"
            )
            return report
        starts, stops = f["units/start"][()], f["units/stop"][()]
        digests = [d.decode("ascii") for d in f["units/sha256"][()]]
        report.units = len(starts)
        if len(starts) and (int(starts[0]) != 0 or int(stops[-1]) != n or np.any(starts[1:] != stops[:-1])):
            report.problems.append("the unit table does not cover the rows exactly once")
            return report
        keys = rows.row_keys()
        for unit, (start, stop, expected) in enumerate(zip(starts, stops, digests, strict=True)):
            a, b = int(start), int(stop)
            try:
                block = features[a:b]
            except Exception as exc:  # fletcher32 mismatch or a truncated file: h5py raises OSError
                reason = f"unreadable ({type(exc).__name__}: {exc})"
            else:
                reason = "" if unit_digest(block, keys[a:b]) == expected else "checksum mismatch"
            if reason:
                report.damaged.append(DamagedUnit(unit, a, b, reason, rows.paths[a] if a < n else ""))
    return report
