"""Peak memory of consolidating a journal into the cache: unit by unit (featurekit) vs one array.

    .venv/bin/python bench/consolidate_memory.py [--rows 100000] [--dim 1280]

Builds a journal's contents in memory (random features), then consolidates them with
`featurekit.extract.job.consolidate` (which writes one checksum unit at a time) and, for comparison,
the way it was done before: every row copied into one (N, D) array, then `write_cache`. Prints
tracemalloc's peak above the journal's own size for each, and the time. Then the whole path from
disk: the same rows committed as journal units, `Journal.read` (which keeps only where each row is)
and `consolidate`, with the peak of all of it. Last, a rerun that reuses every row of that cache:
`open_cached_rows` (row table only) and `consolidate` from it, against `load_features` alone (what
extraction held before).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from featurekit.cache import RowTable, load_features, open_cached_rows, write_cache
from featurekit.cache.journal import Journal, JournalContents
from featurekit.extract.job import consolidate


def measured(work: Callable[[], object]) -> tuple[float, float]:
    """(tracemalloc's peak in MiB, seconds) of `work()`."""
    tracemalloc.start()
    started = time.perf_counter()
    work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    args = parser.parse_args()
    n, dim = args.rows, args.dim
    X = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    rows = RowTable(
        paths=[f"a/{i}.jpg" for i in range(n)],
        content_hashes=[f"{i:064x}" for i in range(n)],
        class_names=["a"],
        labels=np.zeros(n, np.int64),
    )
    keys = rows.row_keys()
    contents = JournalContents(features=dict(zip(keys, X, strict=True)))
    journal_mib = X.nbytes / 2**20

    with tempfile.TemporaryDirectory() as tmp:

        def consolidated(
            out: str, *, contents: JournalContents, cached: np.ndarray, existing: object
        ) -> None:
            consolidate(
                Path(tmp) / out,
                rows=rows,
                cached=cached,
                existing=existing,
                contents=contents,
                dim=dim,
                provenance={"backbone": "bench"},
            )

        def one_array() -> None:
            vectors = np.empty((n, dim), np.float32)
            for i, key in enumerate(keys):
                vectors[i] = contents.features[key]
            write_cache(Path(tmp) / "b.h5", features=vectors, rows=rows, provenance={"backbone": "bench"})

        no_old = np.full(n, -1)
        for label, work in (
            (
                "unit by unit (featurekit)",
                lambda: consolidated("a.h5", contents=contents, cached=no_old, existing=None),
            ),
            ("one (N, D) array (before)", one_array),
        ):
            peak, seconds = measured(work)
            print(f"{label}: peak {peak:.0f} MiB above the journal's {journal_mib:.0f} MiB, {seconds:.1f} s")
        # The whole path from disk: committed units (2,048 rows each, as --commit-every's default),
        # Journal.read (verifies every unit, keeps where rows are), then consolidate.
        journal = Journal(Path(tmp) / "c.h5")
        journal.start(provenance={"backbone": "bench"}, key="k" * 64, overwrite=False)
        for start in range(0, n, 2048):
            part = keys[start : start + 2048]
            journal.commit(features=X[start : start + 2048], keys=part, paths=part)
        peak, seconds = measured(
            lambda: consolidated("c.h5", contents=journal.read(), cached=no_old, existing=None)
        )
        print(
            f"journal on disk → read → consolidate: peak {peak:.0f} MiB in all "
            f"({journal_mib:.0f} MiB of features), {seconds:.1f} s"
        )
        # A rerun that reuses every row of that cache: open it (rows only, features checked
        # through), consolidate from it; against loading it whole, as extraction did before.
        old = Path(tmp) / "c.h5"
        for label, work in (
            (
                "old cache opened → consolidate",
                lambda: consolidated(
                    "d.h5", contents=JournalContents(), cached=np.arange(n), existing=open_cached_rows(old)
                ),
            ),
            ("old cache loaded whole (before)", lambda: load_features(old)),
        ):
            peak, seconds = measured(work)
            print(f"{label}: peak {peak:.0f} MiB in all, {seconds:.1f} s")


if __name__ == "__main__":
    main()
