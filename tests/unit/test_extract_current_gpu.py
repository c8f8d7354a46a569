"""Extraction on cuda:N makes it the current GPU while it runs, and gives the caller's back."""

from __future__ import annotations

import pytest
import torch

from featurekit.extract.engine import current_gpu


def test_an_indexed_gpu_is_current_while_extracting_then_the_callers_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streams, events and nvJPEG follow the current GPU; a notebook's own work must not move."""
    current = [0]

    def set_device(device: torch.device | int) -> None:
        current[0] = device if isinstance(device, int) else int(device.index or 0)

    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.setattr(torch.cuda, "set_device", set_device)

    with current_gpu(torch.device("cuda", 1)):
        assert current == [1]
    assert current == [0]
    with pytest.raises(RuntimeError), current_gpu(torch.device("cuda", 1)):  # a failed or closed run
        assert current == [1]
        raise RuntimeError("a batch failed")
    assert current == [0]
    for untouched in (torch.device("cpu"), torch.device("cuda")):  # no index: the current GPU is used
        with current_gpu(untouched):
            assert current == [0]
