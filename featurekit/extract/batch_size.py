"""Batch size: `auto` probes the GPU, and a forward pass that runs out of memory is split in halves.

`auto` on CUDA runs the real forward pass on synthetic batches of 16, 32, 64, … images (up to
`AUTO_CAP`) and keeps the largest whose peak memory stayed under `MEMORY_FRACTION` of what the device
had: the rest is the margin for JPEG decoding, the loader's pinned batches and fragmentation. On the
CPU `auto` is `CPU_BATCH_SIZE` (batch size hardly matters there and 32 was measured to be fine).

During extraction `OomBackoff` runs the forward pass in slices of at most `limit` images; a
`torch.cuda.OutOfMemoryError` halves the limit for the rest of the run (logged once per halving)
and retries the slice, so no row is lost or reordered.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import torch

from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)

CPU_BATCH_SIZE = 32
AUTO_START = 16
AUTO_CAP = 512  # beyond this the loader's host memory grows and the GPU gains ~nothing
MEMORY_FRACTION = 0.75


def check_batch_size(batch_size: int | str) -> None:
    if batch_size == "auto":
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(
            f"batch size must be a whole number of at least 1 or 'auto', got {batch_size!r}"
        )


def is_oom(exc: BaseException) -> bool:
    """A CUDA out-of-memory error, also when torch.compile wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, torch.cuda.OutOfMemoryError):
            return True
        seen = seen.__cause__
    return False


def free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def probe_batch_size(
    run: Callable[[int], int | None],
    *,
    start: int = AUTO_START,
    cap: int = AUTO_CAP,
    budget: int | None = None,
    on_oom: Callable[[], None] = lambda: None,
) -> int:
    """The largest of start, 2·start, 4·start, … ≤ cap for which `run(size)` neither raises an
    out-of-memory error nor reports a peak memory (its return value, bytes; None = unknown) above
    `budget`. When even `start` does not fit, halves down to 1 (which is returned regardless)."""
    best = 0
    size = start
    while size <= cap:
        try:
            peak = run(size)
        except Exception as exc:
            if not is_oom(exc):
                raise
            peak = None
            fits = False
        else:
            fits = budget is None or peak is None or peak <= budget
        if not fits:
            on_oom()
            break
        best = size
        size *= 2
    if best:
        return best
    size = start // 2
    while size > 1:
        try:
            peak = run(size)
        except Exception as exc:
            if not is_oom(exc):
                raise
            on_oom()
            size //= 2
            continue
        if budget is None or peak is None or peak <= budget:
            return size
        size //= 2
    return 1


def auto_batch_size(
    forward: Callable[[torch.Tensor], torch.Tensor], *, img_size: int, device: torch.device
) -> int:
    """`auto` resolved: CPU_BATCH_SIZE on the CPU; on CUDA, probed with synthetic inputs."""
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    free_device_memory(device)
    free, _total = torch.cuda.mem_get_info(device)
    base = torch.cuda.memory_allocated(device)
    budget = int(MEMORY_FRACTION * free)

    def run(size: int) -> int:
        torch.cuda.reset_peak_memory_stats(device)
        x = torch.randn(size, 3, img_size, img_size, device=device)
        forward(x.contiguous(memory_format=torch.channels_last))
        torch.cuda.synchronize(device)
        del x
        return torch.cuda.max_memory_allocated(device) - base

    chosen = probe_batch_size(run, budget=budget, on_oom=lambda: free_device_memory(device))
    free_device_memory(device)
    logger.info(
        "batch size auto: %d (peak memory under %.0f%% of %.1f GiB free)",
        chosen,
        100 * MEMORY_FRACTION,
        free / 2**30,
    )
    return chosen


class OomBackoff:
    """Run `forward` on slices of at most `limit` rows; halve `limit` (for good) on CUDA OOM.

    With `pad=True` every slice is padded to exactly `limit` rows (the padded rows' outputs dropped),
    so a shape-specialised compiled forward sees one shape per limit and never recompiles for the
    last, partial batch.
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        limit: int,
        *,
        pad: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.forward = forward
        self.limit = limit
        self.pad = pad
        self.device = device or torch.device("cpu")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        start, total = 0, int(images.shape[0])
        while start < total:
            size = min(self.limit, total - start)
            try:
                outputs.append(self._run(images[start : start + size]))
            except Exception as exc:
                if not is_oom(exc) or size == 1:
                    raise
                failed = True
            else:
                failed = False
            if failed:  # outside the except block, so the failed attempt's tensors can be freed
                self.limit = max(1, size // 2)
                logger.warning(
                    "out of device memory on a forward pass of %d images; using %d from now on",
                    size,
                    self.limit,
                )
                free_device_memory(self.device)
                continue
            start += size
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        count = int(images.shape[0])
        if not self.pad or count == self.limit:
            return self.forward(images)
        padded = torch.empty(
            (self.limit, *images.shape[1:]),
            dtype=images.dtype,
            device=images.device,
            memory_format=torch.channels_last,
        )
        padded[:count] = images
        padded[count:] = 0
        return self.forward(padded)[:count]
