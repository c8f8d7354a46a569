"""Peak memory of consolidating a journal into the cache: unit by unit (featurekit) vs one array.

    .venv/bin/python bench/consolidate_memory.py [--rows 100000] [--dim 1280]

Builds a journal's contents in memory (random features), then consolidates them with
`featurekit.extract.job.consolidate` (which writes one checksum unit at a time) and, for comparison,
the way it was done before: every row copied into one (N, D) array, then `write_cache`. Prints
tracemalloc's peak above the journal's own size for each, and the time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from featurekit.cache import RowTable, write_cache
from featurekit.cache.journal import JournalContents
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
    contents = JournalContents()
    for key, vector in zip(keys, X, strict=True):
        contents.features[key] = vector
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


if __name__ == "__main__":
    main()
