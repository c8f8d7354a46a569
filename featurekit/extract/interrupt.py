"""Ctrl-C and SIGTERM during extraction: finish the batch in hand, commit, stop cleanly.

Inside `stop_signals()` the first SIGINT or SIGTERM only raises a flag; the extraction loop checks
it after each batch, commits the rows already embedded and raises ExtractionInterrupted (exit status
130 for SIGINT, 143 for SIGTERM). A second signal interrupts at once (KeyboardInterrupt): committed
units are atomic, so even that loses nothing already committed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any


@dataclass
class StopRequest:
    signal_number: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else ""

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal_number or signal.SIGINT)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Turn SIGINT/SIGTERM into a stop request for the duration of the block (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be set from the main thread
        return

    def on_signal(number: int, frame: FrameType | None) -> None:
        if request.requested:
            raise KeyboardInterrupt  # a second signal: stop now
        request.signal_number = number

    previous: dict[int, Any] = {}
    for number in (int(signal.SIGINT), int(signal.SIGTERM)):
        previous[number] = signal.signal(number, on_signal)
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
