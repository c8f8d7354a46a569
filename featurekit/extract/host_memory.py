"""Keep freed host memory inside the process during CPU extraction (glibc only).

A CPU forward pass allocates and frees the same large activation buffers (tens of MB each) every
batch. glibc serves any block above its mmap threshold with a fresh `mmap` and unmaps it on `free`, so
every batch page-faults and zeroes hundreds of MB again: on the 2-core development machine half of the
extraction time was kernel time, and EfficientNet-Lite0 ran 63 img/s instead of 267 img/s at 224 px
(`bench/extract_throughput.py`, docs/benchmarks.md). Raising the thresholds keeps those blocks on the
heap for reuse, as `MALLOC_MMAP_THRESHOLD_` would, but without asking users to set the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap and are reused
_TRIM_THRESHOLD = 1 << 30  # free heap kept before trimming it back to the OS
_TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc so large freed blocks are reused, once per process. True when applied.

    A no-op (False) off Linux or on a C library without `mallopt` (musl); never raises.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = [
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1,
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1,
        mallopt(_M_TOP_PAD, _TOP_PAD) == 1,
    ]
    _applied = all(done)
    logger.debug("glibc malloc tuned for CPU inference: %s", _applied)
    return _applied
