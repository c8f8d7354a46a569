"""Which extraction run made each row, and where its image was decoded.

The provenance says what every row has in common (the keyed settings, identical for all rows by
construction). What may differ between rows is recorded here: a cache grown or resumed over
several runs holds rows made on other machines, library versions, devices or batch sizes, and on
the GPU path a JPEG the device decoder could not take (CMYK, non-JPEG, `--cpu-decode-share`) was
decoded by PIL, a few uint8 levels away from nvJPEG. So each row carries the index of its run (a
JSON record per run: what was asked for, what it resolved to, library versions, host) and its
decoder: `cpu` (PIL in the loader, the reference path), `gpu` (on the extraction device), or
`unrecorded` (rows made by a featurekit that did not record it).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import h5py
import numpy as np

# Decoder codes stored per row (HDF5 enum over uint8). 0 is "unrecorded" so an absent column reads
# as what it means.
DECODERS = {"unrecorded": 0, "cpu": 1, "gpu": 2}
DECODER_DTYPE = h5py.enum_dtype(DECODERS, basetype="u1")
DECODER_NAMES = {code: name for name, code in DECODERS.items()}


def new_run_record(**fields: Any) -> dict[str, Any]:
    """A run record with a fresh id and its start time; `fields` hold the rest (see api.extract)."""
    return {"id": uuid.uuid4().hex, "started_at": datetime.now(UTC).isoformat(timespec="seconds"), **fields}


def unrecorded_run(provenance: dict[str, Any] | None) -> dict[str, Any]:
    """The run of rows whose run was not recorded: what the provenance they came with says (the last
    run that wrote that cache or journal). Its id is a digest of those values, so rows from two
    such sources with different provenances stay apart, and the same source gives the same id."""
    provenance = provenance or {}
    known = {
        "started_at": provenance.get("created_at"),
        "extraction": provenance.get("extraction"),
        "versions": provenance.get("versions"),
    }
    digest = hashlib.sha256(json.dumps(known, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {
        "id": f"unrecorded-{digest}",
        "unrecorded": True,
        "note": "made by a featurekit that did not record runs: values from the provenance they came with",
        **known,
    }


def is_unrecorded(run: dict[str, Any]) -> bool:
    return run.get("unrecorded") is True


@dataclass(frozen=True, eq=False)
class RowsMade:
    """Per row: its run (index into `runs`) and its decoder code (DECODERS)."""

    runs: list[dict[str, Any]]
    run: np.ndarray  # (N,) int32
    decoder: np.ndarray  # (N,) uint8

    def __post_init__(self) -> None:
        if self.run.shape != self.decoder.shape or self.run.ndim != 1:
            raise ValueError(
                f"run {self.run.shape} and decoder {self.decoder.shape} must be equal 1-D shapes"
            )
        if len(self.run) and (self.run.min() < 0 or self.run.max() >= len(self.runs)):
            raise ValueError(f"run indices outside the {len(self.runs)} runs recorded")

    def __len__(self) -> int:
        return len(self.run)

    @classmethod
    def empty(cls) -> RowsMade:
        return cls(runs=[], run=np.empty(0, dtype=np.int32), decoder=np.empty(0, dtype=np.uint8))

    @classmethod
    def unrecorded(cls, n: int, provenance: dict[str, Any] | None) -> RowsMade:
        """`n` rows of one unrecorded run (a cache written before runs were recorded)."""
        return cls(
            runs=[unrecorded_run(provenance)],
            run=np.zeros(n, dtype=np.int32),
            decoder=np.zeros(n, dtype=np.uint8),
        )

    def subset(self, rows: np.ndarray | Sequence[int]) -> RowsMade:
        rows = np.asarray(rows, dtype=np.int64)
        return RowsMade(runs=self.runs, run=self.run[rows], decoder=self.decoder[rows])

    def compact(self) -> RowsMade:
        """Only the runs some row refers to, in order of first use (a cache rewritten without the rows
        of an old run no longer lists it)."""
        used, first = np.unique(self.run, return_index=True)
        order = used[np.argsort(first, kind="stable")]
        remap = np.full(len(self.runs), -1, dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        return RowsMade(runs=[self.runs[i] for i in order], run=remap[self.run], decoder=self.decoder)

    def summary(self) -> list[dict[str, Any]]:
        """Each run with its row count and its rows per decoder (for `cache info`)."""
        out = []
        for i, record in enumerate(self.runs):
            mine = self.decoder[self.run == i]
            decoders = {DECODER_NAMES[int(c)]: int((mine == c).sum()) for c in np.unique(mine)}
            out.append({**record, "rows": len(mine), "decoders": decoders})
        return out


def concat(parts: Sequence[RowsMade], order: np.ndarray | None = None) -> RowsMade:
    """The rows of `parts` one after the other (then permuted by `order`, if given), their runs
    merged by id (the same run found in two parts is listed once; its `batch_sizes` united)."""
    runs: list[dict[str, Any]] = []
    position: dict[str, int] = {}
    runs_of_rows, decoders = [], []
    for part in parts:
        part = part.compact()  # a run no row of this part refers to must not shape the merged record
        remap = np.empty(len(part.runs), dtype=np.int32)
        for i, record in enumerate(part.runs):
            run_id = str(record.get("id"))
            if run_id not in position:
                position[run_id] = len(runs)
                runs.append(dict(record))
            else:
                runs[position[run_id]] = merge_run_records(runs[position[run_id]], record)
            remap[i] = position[run_id]
        runs_of_rows.append(remap[part.run] if len(part.runs) else np.empty(0, dtype=np.int32))
        decoders.append(part.decoder)
    run = np.concatenate(runs_of_rows) if runs_of_rows else np.empty(0, dtype=np.int32)
    decoder = np.concatenate(decoders) if decoders else np.empty(0, dtype=np.uint8)
    if order is not None:
        run, decoder = run[order], decoder[order]
    return RowsMade(runs=runs, run=run.astype(np.int32), decoder=decoder.astype(np.uint8)).compact()


def merge_run_records(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One run's record as seen in two places (two journal units, or a cache and a unit): the batch
    sizes of both."""
    sizes = sorted(set(a.get("batch_sizes") or []) | set(b.get("batch_sizes") or []))
    return {**a, **({"batch_sizes": sizes} if sizes else {})}
