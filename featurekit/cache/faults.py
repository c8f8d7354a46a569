"""Crash points for the kill -9 tests: `FEATUREKIT_CRASH_AT=NAME:N` kills this process with SIGKILL
the N-th time it reaches the point NAME. Unset (always, outside tests) it does nothing.

Points: `before-rename` (a unit or cache file fully written and fsynced, not yet renamed),
`unit-committed` (a unit renamed into place), `cache-committed` (the cache renamed into place, the
journal not yet removed).
"""

from __future__ import annotations

import os
import signal

ENV = "FEATUREKIT_CRASH_AT"
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
