"""An append-only JSON-lines log of a search's trials, so that an interrupted search resumes.

The first line holds the search's key (a hash of everything that decides its trials) and settings;
every further line is one finished trial, written and fsynced the moment it is scored. A rerun with the
same key reads the trials back and fits only the rest; a last line cut short by a crash is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)


class TrialLog:
    def __init__(self, path: Path, *, key: str, settings: dict[str, Any], overwrite: bool = False) -> None:
        self.path = Path(path)
        self.key = key
        self.entries: list[dict[str, Any]] = []
        if self.path.exists() and overwrite:
            self.path.unlink()
        if self.path.exists():
            header, self.entries = _read(self.path)
            if header.get("search_key") != key:
                raise InvalidInputError(
                    f"{self.path} logs a search with other settings (key {header.get('search_key')!r}, "
                    f"this search {key!r}); pass --overwrite to start it again, or use another --work-dir"
                )
            if self.entries:
                logger.info("resuming the search in %s: %d trials already done", self.path, len(self.entries))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"search_key": key, "settings": settings})

    @property
    def resumed(self) -> int:
        return len(self.entries)

    def append(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self._append(entry)

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True, default=_json_default) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # a line cut short by a crash: drop it, so appends stay whole
        cut = data.rfind(b"\n") + 1
        logger.warning(
            "%s: dropping an unfinished last line (%d bytes); that trial is fitted again",
            path,
            len(data) - cut,
        )
        with path.open("r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    lines = data.decode("utf-8").splitlines()
    if not lines:
        raise InvalidInputError(f"{path} is empty; delete it (or pass --overwrite) to start the search again")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{path}: the first line is not a search header ({exc}); pass --overwrite"
        ) from exc
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise InvalidInputError(f"{path}: line {number} is not JSON; pass --overwrite") from None
    return header, entries


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"cannot log {type(obj).__name__} as JSON")
