"""The device a torch head (or the search's batched solver) runs on; torch is imported only when called."""

from __future__ import annotations

from typing import Any

from featurekit.errors import InvalidInputError


def torch_device(device: str) -> Any:
    """`torch.device` for "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"; a clear error
    when CUDA is asked for and absent."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(
            f"device {device!r} asked for, but CUDA is not available; use device 'cpu' (--device cpu)"
        )
    return torch.device(device)
