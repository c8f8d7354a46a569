"""Run records: create, write atomically under a unique name, read back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import featurekit
from featurekit.errors import InvalidInputError, PathNotFoundError
from featurekit.reports import RunRecord, read_run_record, write_run_record


def _record(**overrides: object) -> RunRecord:
    values: dict[str, object] = {
        "command": "fit",
        "config": {"head": "logreg", "C": 0.1, "img_size": (224, 224)},
        "metrics": {"accuracy": 0.91, "per_class": {"cat": {"f1": 0.9, "support": 10}}},
        "timings": {"fit": 1.5},
        "cache_key": "0123456789abcdef",
        "cache_path": "cache/x.h5",
        "model_path": "models/m.skops",
        "created_at": "2025-03-04T05:06:07+00:00",
        "featurekit_version": "0.1.0",
        "split": "stratified: StratifiedShuffleSplit(test_size=0.2, random_state=0)",
    }
    values.update(overrides)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    record = _record(config={"head": "logreg", "C": 0.1})
    path = write_run_record(record, reports_dir=tmp_path)
    assert path == tmp_path / "runs" / "20250304T050607Z-fit-01234567.json"
    assert read_run_record(path) == record


def test_file_is_sorted_indented_plain_json(tmp_path: Path) -> None:
    record = _record(metrics={"accuracy": np.float64(0.5), "n": np.int64(3)}, config={"size": (1, 2)})
    path = write_run_record(record, reports_dir=tmp_path)
    text = path.read_text()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert text.startswith('{\n  "cache_key"')
    assert data["metrics"] == {"accuracy": 0.5, "n": 3}
    assert data["config"] == {"size": [1, 2]}


def test_same_second_runs_do_not_overwrite_each_other(tmp_path: Path) -> None:
    first = write_run_record(_record(), reports_dir=tmp_path)
    second = write_run_record(_record(metrics={"accuracy": 0.5}), reports_dir=tmp_path)
    assert second.name == "20250304T050607Z-fit-01234567-2.json"
    assert read_run_record(first).metrics["accuracy"] == 0.91
    assert read_run_record(second).metrics["accuracy"] == 0.5
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {first.name, second.name}  # no temp files


def test_name_without_cache_key_and_with_odd_command(tmp_path: Path) -> None:
    path = write_run_record(_record(cache_key=None, command="search/grid run"), reports_dir=tmp_path)
    assert path.name == "20250304T050607Z-search-grid-run-nocache.json"


def test_create_stamps_time_and_version() -> None:
    record = RunRecord.create(command="evaluate", config={}, metrics={}, timings={"total": 0.1})
    assert record.featurekit_version == featurekit.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record.created_at)
    assert record.cache_key is None and record.split is None
    with pytest.raises(AttributeError):
        record.command = "x"  # type: ignore[misc]


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match="does not exist"):
        read_run_record(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not a run record \\(invalid JSON"):
        read_run_record(bad)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"command": "fit"}))
    with pytest.raises(InvalidInputError, match="lacks field\\(s\\) config, metrics"):
        read_run_record(partial)


def test_unknown_fields_from_newer_versions_are_ignored(tmp_path: Path) -> None:
    data = _record().to_dict() | {"gpu": "H100"}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert read_run_record(path) == RunRecord.from_dict(_record().to_dict())


def test_bad_created_at_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not an ISO 8601 time"):
        write_run_record(_record(created_at="yesterday"), reports_dir=tmp_path)
