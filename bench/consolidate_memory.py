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
from pathlib import Path

import numpy as np

from featurekit.cache import RowTable, load_features, open_cached_rows, write_cache
from featurekit.cache.journal import Journal, JournalContents
from featurekit.extract.job import consolidate


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
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("unit by unit (featurekit)", "one (N, D) array (before)"):
            tracemalloc.start()
            started = time.perf_counter()
            if label.startswith("unit"):
                consolidate(
                    Path(tmp) / "a.h5",
                    rows=rows,
                    cached=np.full(n, -1),
                    existing=None,
                    contents=contents,
                    dim=dim,
                    provenance={"backbone": "bench"},
                )
            else:
                vectors = np.empty((n, dim), np.float32)
                for i, key in enumerate(keys):
                    vectors[i] = contents.features[key]
                write_cache(Path(tmp) / "b.h5", features=vectors, rows=rows, provenance={"backbone": "bench"})
                del vectors
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"{label}: peak {peak / 2**20:.0f} MiB above the journal's {X.nbytes / 2**20:.0f} MiB, "
                f"{time.perf_counter() - started:.1f} s"
            )
        # The whole path from disk: committed units (2,048 rows each, as --commit-every's default),
        # Journal.read (verifies every unit, keeps where rows are), then consolidate.
        journal = Journal(Path(tmp) / "c.h5")
        journal.start(provenance={"backbone": "bench"}, key="k" * 64, overwrite=False)
        for start in range(0, n, 2048):
            part = keys[start : start + 2048]
            journal.commit(features=X[start : start + 2048], keys=part, paths=part)
        del contents, X
        tracemalloc.start()
        started = time.perf_counter()
        consolidate(
            Path(tmp) / "c.h5",
            rows=rows,
            cached=np.full(n, -1),
            existing=None,
            contents=journal.read(),
            dim=dim,
            provenance={"backbone": "bench"},
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"journal on disk → read → consolidate: peak {peak / 2**20:.0f} MiB in all "
            f"({n * dim * 4 / 2**20:.0f} MiB of features), {time.perf_counter() - started:.1f} s"
        )
        # A rerun that reuses every row of that cache: open it (rows only, features checked
        # through), consolidate from it; against loading it whole, as extraction did before.
        old = Path(tmp) / "c.h5"
        for label in ("old cache opened → consolidate", "old cache loaded whole (before)"):
            tracemalloc.start()
            started = time.perf_counter()
            if label.startswith("old cache opened"):
                consolidate(
                    Path(tmp) / "d.h5",
                    rows=rows,
                    cached=np.arange(n),
                    existing=open_cached_rows(old),
                    contents=JournalContents(),
                    dim=dim,
                    provenance={"backbone": "bench"},
                )
            else:
                load_features(old)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"{label}: peak {peak / 2**20:.0f} MiB in all, {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
