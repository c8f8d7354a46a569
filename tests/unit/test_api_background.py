"""`api._Background`: the file hashing that runs while the model is built."""

from __future__ import annotations

import threading

import pytest

from featurekit.api import _Background


def test_background_work_returns_its_value_or_raises_its_error() -> None:
    release = threading.Event()
    waiting = _Background(lambda: release.wait(5) and "hashed", name="featurekit-test")
    assert waiting._thread.daemon  # a Ctrl-C in the main thread never waits for the hashing
    release.set()
    assert waiting.result() == "hashed"
    with pytest.raises(ZeroDivisionError):
        _Background(lambda: 1 / 0, name="featurekit-test").result()
