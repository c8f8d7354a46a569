"""Extraction across processes, GPUs and machines under `torchrun` (torch.distributed, env://).

Each rank embeds every world-th row still to extract and writes its part beside the cache
(`<cache>.part-<rank>-of-<world>.npz`, written under a temporary name, then renamed); after a barrier,
rank 0 reads the parts, writes the one cache with rows in the source's order and removes the parts.
The process group (gloo: it runs on CPU-only machines and needs no GPU for a barrier) is used only to
wait, never to move features, so the parts' folder must be shared by all ranks (one machine, or a
shared file system for several).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from featurekit.extract.dataset import BadInput
from featurekit.extract.engine import ExtractionResult

# A rank may wait for slower ranks for the whole extraction: far beyond torch's 30-minute default.
_BARRIER_TIMEOUT = timedelta(days=2)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_ranks() -> Ranks:
    """This process's place under torchrun (WORLD_SIZE/RANK/LOCAL_RANK); one rank otherwise.

    Under torchrun the gloo process group is joined here, once.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=_BARRIER_TIMEOUT)
    return Ranks(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def rank_device(device: str, ranks: Ranks) -> str:
    """`auto`/`cuda` become this rank's own GPU (cuda:LOCAL_RANK) when there are several ranks."""
    if ranks.world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ranks.local_rank}"
    return device


def part_path(cache_path: Path, rank: int, world: int) -> Path:
    return cache_path.with_name(f"{cache_path.name}.part-{rank}-of-{world}.npz")


def write_part(cache_path: Path, ranks: Ranks, result: ExtractionResult) -> Path:
    """This rank's features, rows and failures, atomically, as plain arrays (no pickle)."""
    path = part_path(cache_path, ranks.rank, ranks.world)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    failures = result.failures
    np.savez(
        tmp,
        features=result.features,
        rows=result.rows,
        failed_rows=np.array([b.row for b in failures], dtype=np.int64),
        failed_paths=np.array([b.path for b in failures], dtype=str),
        failed_stages=np.array([b.stage for b in failures], dtype=str),
        failed_reasons=np.array([b.reason for b in failures], dtype=str),
    )
    tmp.replace(path)
    return path


def read_parts(cache_path: Path, world: int, dim: int) -> ExtractionResult:
    """Every rank's part merged (rows sorted), then the part files removed."""
    features, rows, failures = [np.empty((0, dim), np.float32)], [np.empty(0, np.int64)], []
    paths = [part_path(cache_path, rank, world) for rank in range(world)]
    for path in paths:
        with np.load(path, allow_pickle=False) as part:
            features.append(part["features"])
            rows.append(part["rows"])
            failures += [
                BadInput(row=int(r), path=str(p), stage=str(s), reason=str(m))
                for r, p, s, m in zip(
                    part["failed_rows"],
                    part["failed_paths"],
                    part["failed_stages"],
                    part["failed_reasons"],
                    strict=True,
                )
            ]
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    merged = ExtractionResult(
        features=np.concatenate(features)[order],
        rows=all_rows[order],
        failures=sorted(failures, key=lambda b: b.row),
    )
    for path in paths:
        path.unlink()
    return merged


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def finish(ranks: Ranks) -> None:
    """Leave the process group after the last barrier."""
    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
