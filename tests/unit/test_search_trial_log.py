"""The trial log: a search with other settings is refused, a crash-cut last line is dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurekit.errors import InvalidInputError
from featurekit.search.trial_log import TrialLog


def test_entries_survive_a_reopen_and_a_cut_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    log = TrialLog(path, key="k1", settings={"head": "knn"})
    log.append({"trial": 0, "score": 0.5})
    log.append({"trial": 1, "score": float("-inf")})
    with path.open("a") as fh:  # a crash in the middle of writing trial 2
        fh.write('{"trial": 2, "sco')
    again = TrialLog(path, key="k1", settings={"head": "knn"})
    assert [e["trial"] for e in again.entries] == [0, 1]
    assert again.entries[1]["score"] == float("-inf")
    again.append({"trial": 2, "score": 0.7})  # appends stay whole lines after the cut
    assert [e["trial"] for e in TrialLog(path, key="k1", settings={}).entries] == [0, 1, 2]


def test_other_settings_are_refused_unless_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    TrialLog(path, key="k1", settings={}).append({"trial": 0})
    with pytest.raises(InvalidInputError, match=r"other settings.*--overwrite"):
        TrialLog(path, key="k2", settings={})
    fresh = TrialLog(path, key="k2", settings={}, overwrite=True)
    assert fresh.entries == []


def test_a_damaged_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    path.write_text('{"search_key": "k"}\nnot json\n{"trial": 1}\n')
    with pytest.raises(InvalidInputError, match="line 2 is not JSON"):
        TrialLog(path, key="k", settings={})
