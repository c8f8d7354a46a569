"""Extraction across processes, GPUs and machines under `torchrun` (torch.distributed, env://).

Each rank embeds every world-th row still to extract and commits it in units to the cache's
journal (`<cache>.parts/unit-<rank>-<seq>.h5`, see featurekit/cache/journal.py); after a barrier,
rank 0 consolidates the units into the one cache with rows in the source's order. An interrupted
multi-rank job resumes like a single-process one. The process group (gloo: it runs on CPU-only
machines and needs no GPU) is used to wait, to agree and to share the content hashes (each rank
hashes a slice of the files), never to move features, so the journal's folder must be shared by all
ranks (one machine, or a shared file system for several).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from featurekit.errors import FeaturekitError
from featurekit.images import HashedFiles

T = TypeVar("T")

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


def agree(ranks: Ranks, ok: bool) -> bool:
    """True when every rank is ok (a barrier too): one rank's failure stops all of them cleanly."""
    if ranks.world <= 1:
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def stop_unless_every_rank_ok(ranks: Ranks, error: BaseException | None, elsewhere: str) -> None:
    """After every rank has tried a step: raise this rank's `error`, or, when only another rank
    failed, a FeaturekitError saying `elsewhere`; return when every rank succeeded."""
    if not agree(ranks, error is None):
        if error is not None:
            raise error
        raise FeaturekitError(elsewhere)


def every_rank(ranks: Ranks, value: T) -> list[T]:
    """`value` from every rank, in rank order, on every rank (a barrier too)."""
    if ranks.world <= 1:
        return [value]
    values: list[Any] = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


def gather_hashed_files(ranks: Ranks, mine: HashedFiles) -> HashedFiles:
    """Every rank's share of the content hashes, on every rank (in the same order everywhere).

    Each rank reads only its slice of the files for hashing (1/world of the bytes, which on a shared
    file system is the whole point), then the slices travel over gloo: ~100 bytes per file.
    """
    merged: HashedFiles = {}
    for share in every_rank(ranks, mine):
        merged.update(share)
    return merged


def finish(ranks: Ranks) -> None:
    """Leave the process group after the last barrier."""
    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
