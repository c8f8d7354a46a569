"""Content hashes: the identity of an image's bytes, independent of where the file lives."""

from __future__ import annotations

import hashlib
import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurekit.images.decode import npz_row
from featurekit.images.failures import read_failure_reason, special_file_reason
from featurekit.images.index import ImageIndex

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB


@dataclass(frozen=True)
class ContentHashes:
    """Per row of an index: the sha256 hex of its content, or "" and the reason it could not be read."""

    hashes: list[str]
    reasons: list[str]  # "" where the row was hashed

    def unreadable(self) -> dict[int, str]:
        """Row -> reason, for the rows whose file could not be read."""
        return {row: reason for row, reason in enumerate(self.reasons) if reason}


def hash_file(path: Path) -> tuple[str, str]:
    """(sha256 hex, "") of the file's bytes, or ("", why it cannot be read).

    Only regular files are opened (a FIFO would block forever); an empty file is reported too:
    it holds no image, and every empty file would otherwise share one content hash.
    """
    digest = hashlib.sha256()
    try:
        special = special_file_reason(path)
        if special is not None:
            return "", special
        with path.open("rb") as f:
            size = 0
            while chunk := f.read(CHUNK_SIZE):
                size += len(chunk)
                digest.update(chunk)
    except OSError as exc:
        logger.debug("cannot hash %s: %s", path, exc)
        return "", read_failure_reason(path, exc)
    if size == 0:
        return "", "empty file (0 bytes)"
    return digest.hexdigest(), ""


def file_sha256(path: Path) -> str:
    """sha256 hex of the file's bytes, or "" when it cannot be read (`hash_file` says why)."""
    return hash_file(path)[0]


def array_sha256(pixels: np.ndarray) -> str:
    """sha256 hex of b"shape=<d0,d1,...>;dtype=<numpy dtype.str>;" followed by the C-order bytes."""
    data = np.ascontiguousarray(pixels)
    header = f"shape={','.join(str(d) for d in data.shape)};dtype={data.dtype.str};"
    digest = hashlib.sha256(header.encode())
    digest.update(data.data)
    return digest.hexdigest()


# (sha256 hex, reason) per distinct path of an index: what one rank hashed (see `hash_share`).
HashedFiles = dict[str, tuple[str, str]]


def hash_contents(index: ImageIndex, *, n_jobs: int = 1) -> ContentHashes:
    """One sha256 hex per row and, for rows whose file cannot be read, the reason why.

    Rows sharing a file (boxes) share its hash, each file is read once. Serial by default: on a
    local disk threads only add contention (20,000 small JPEGs take ~0.3 s serially and longer with
    4-8 threads); `n_jobs` > 1 can help on network file systems.
    """
    return rows_from_files(index, hash_share(index, n_jobs=n_jobs))


def hash_share(index: ImageIndex, *, part: int = 0, parts: int = 1, n_jobs: int = 1) -> HashedFiles:
    """Hash the `part`-th of `parts` contiguous slices of the index's distinct files (all by default).

    Under torchrun each rank hashes its own slice and the ranks exchange the results, so every file
    is read once for hashing in all, not once per rank (`distributed.gather_hashed_files`).
    """
    if not 0 <= part < parts:
        raise ValueError(f"part {part} is not in 0..{parts - 1}")
    distinct = list(dict.fromkeys(index.paths))
    mine = distinct[len(distinct) * part // parts : len(distinct) * (part + 1) // parts]
    if index.array is not None:
        pixels = index.array
        return {p: (array_sha256(pixels[npz_row(p)]), "") for p in mine}
    files = [index.root / p for p in mine]
    if n_jobs <= 1 or len(files) < 2 * n_jobs:
        results = [hash_file(f) for f in files]
    else:
        # One contiguous slice per thread: a future per file costs more than hashing a small file.
        bounds = [len(files) * k // n_jobs for k in range(n_jobs + 1)]
        slices = [files[a:b] for a, b in itertools.pairwise(bounds)]
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            results = [r for chunk in pool.map(lambda fs: [hash_file(f) for f in fs], slices) for r in chunk]
    return dict(zip(mine, results, strict=True))


def rows_from_files(index: ImageIndex, hashed: HashedFiles) -> ContentHashes:
    """Per row of `index`, the hash and reason of its file, from the hashes of every distinct path."""
    return ContentHashes(
        hashes=[hashed[p][0] for p in index.paths], reasons=[hashed[p][1] for p in index.paths]
    )


def content_hashes(index: ImageIndex, *, n_jobs: int = 1) -> list[str]:
    """One sha256 hex per row; unreadable files hash to "" (`hash_contents` also says why)."""
    return hash_contents(index, n_jobs=n_jobs).hashes
