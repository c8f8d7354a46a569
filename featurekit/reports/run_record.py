"""One JSON file per run: what was run, on which features, with which settings, and what it scored."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import featurekit
from featurekit.errors import InvalidInputError, PathNotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRecord:
    command: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, float]  # seconds per stage, e.g. {"fit": 3.2, "evaluate": 0.4}
    cache_key: str | None
    cache_path: str | None
    model_path: str | None
    created_at: str  # ISO 8601, UTC
    featurekit_version: str
    split: str | None  # SplitResult.description, when the run split the data

    @classmethod
    def create(
        cls,
        *,
        command: str,
        config: dict[str, Any],
        metrics: dict[str, Any],
        timings: dict[str, float],
        cache_key: str | None = None,
        cache_path: str | None = None,
        model_path: str | None = None,
        split: str | None = None,
    ) -> RunRecord:
        """A record stamped with the current UTC time and featurekit version."""
        return cls(
            command=command,
            config=config,
            metrics=metrics,
            timings=timings,
            cache_key=cache_key,
            cache_path=cache_path,
            model_path=model_path,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            featurekit_version=featurekit.__version__,
            split=split,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (numpy scalars, paths, tuples and dataclasses converted)."""
        converted: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self), default=_json_default))
        return converted

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise InvalidInputError(f"run record lacks field(s) {', '.join(missing)}")
        extra = sorted(set(data) - set(names))
        if extra:  # written by a newer featurekit: keep reading, say what was skipped
            logger.debug("ignoring unknown run-record fields %s", extra)
        return cls(**{n: data[n] for n in names})


def write_run_record(record: RunRecord, *, reports_dir: Path = Path("reports")) -> Path:
    """Write `reports_dir/runs/<UTC timestamp>-<command>-<short key>.json` atomically; never overwrites."""
    runs = Path(reports_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n"
    short_key = (record.cache_key or "nocache")[:8]
    stem = f"{_timestamp(record.created_at)}-{_slug(record.command)}-{_slug(short_key)}"
    fd, tmp_name = tempfile.mkstemp(dir=runs, prefix=f".{stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        return _publish(Path(tmp_name), runs, stem)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _publish(tmp: Path, runs: Path, stem: str) -> Path:
    # A hard link appears atomically and fails if the name exists, so two runs in the same second
    # get -2, -3, ... instead of one overwriting the other.
    for n in range(1, 1000):
        target = runs / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        except OSError:  # filesystem without hard links: fall back to replace on a free name
            if target.exists():
                continue
            tmp.replace(target)
        return target
    raise InvalidInputError(f"too many run records named {stem}* in {runs}")


def read_run_record(path: Path) -> RunRecord:
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(f"run record {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not a run record (invalid JSON: {exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} is not a run record (expected a JSON object)")
    return RunRecord.from_dict(data)


def _timestamp(created_at: str) -> str:
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError as exc:
        raise InvalidInputError(f"created_at {created_at!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.") or "x"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")
