"""`--compile`: the backbone's forward pass through torch.compile, one static shape per run.

The mode is torch.compile's default (inductor, no CUDA graphs), chosen over the alternatives:
- "reduce-overhead" / "max-autotune" capture CUDA graphs, whose outputs are overwritten by the next
  replay: the engine keeps one batch's features on the device while the next batch runs (copy/compute
  overlap), and the OOM back-off changes the batch shape mid-run; both would need extra copies or
  re-captures. Frozen conv nets at batch ≥ 64 are not launch-bound anyway.
- "max-autotune-no-cudagraphs" benchmarks Triton GEMM/conv templates at compile time (minutes for a
  ResNet-50), worth it mainly for GEMM-heavy ViTs; `ExtractionSettings.compile_mode` selects it, and
  bench/extract_throughput.py --compile-mode measures both.
`dynamic=False` is safe because the engine pads every forward pass to the batch size
(batch_size.OomBackoff(pad=True)): one compilation per run (one more after an OOM halving), never
one for the last partial batch.
Compilation changes features only by float reassociation (tests/unit/test_extract_compile.py), so it is
a runtime setting: recorded, not keyed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
# The torch.compile backend; tests swap in a counting backend to check for recompilations.
BACKEND: Any = "inductor"


def check_compile_mode(mode: str) -> None:
    if mode not in COMPILE_MODES:
        raise InvalidInputError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")


def compile_forward(
    forward: Callable[[torch.Tensor], torch.Tensor], *, mode: str = "default"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`forward` compiled for static shapes (the caller pads every call to one batch size)."""
    check_compile_mode(mode)
    options: dict[str, Any] = {"dynamic": False, "backend": BACKEND}
    if BACKEND == "inductor" and mode != "default":
        options["mode"] = mode
    logger.info("compiling the forward pass (torch.compile, mode %s): the first batch waits for it", mode)
    return torch.compile(forward, **options)
