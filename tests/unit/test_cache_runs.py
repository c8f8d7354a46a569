"""Which run made each row and where its image was decoded: the record, its storage in the cache and
the journal, and how consolidation carries it (a cache grown or resumed over several runs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from featurekit.cache import RowTable, cache_info, load_features, open_cached_rows, write_cache
from featurekit.cache.journal import Journal
from featurekit.cache.runs import DECODERS, RowsMade, concat, is_unrecorded, unrecorded_run
from featurekit.cache.store import open_cache, read_made
from featurekit.cache.verify import verify_cache
from featurekit.cache.writer import UnitWriter
from featurekit.errors import CacheDamagedError
from featurekit.extract.repair import repair_cache

CPU, GPU, UNRECORDED = DECODERS["cpu"], DECODERS["gpu"], DECODERS["unrecorded"]
PROVENANCE = {
    "backbone": "toy",
    "precision": "float32",
    "extraction": {"batch_size": 8},
    "versions": {"torch": "2.14.1"},
    "created_at": "2026-11-22T00:00:00+00:00",
}


def _run(name: str, **extra: object) -> dict[str, object]:
    return {"id": name, "host": "h", **extra}


def _rows(n: int) -> RowTable:
    return RowTable(paths=[f"a/{i}.jpg" for i in range(n)], content_hashes=[f"{i:064x}" for i in range(n)])


def _cache(path: Path, rows: int, made: RowsMade | None = None, value: float = 0.0) -> Path:
    """A cache of `rows` rows, every feature `value`, with `made` as its record (None: none)."""
    features = np.full((rows, 2), value, np.float32)
    return write_cache(path, features=features, rows=_rows(rows), provenance=PROVENANCE, made=made)


def test_concat_merges_runs_by_id_unites_batch_sizes_and_puts_rows_in_order() -> None:
    first = RowsMade(
        runs=[_run("A", batch_sizes=[64]), _run("B")],
        run=np.array([0, 1, 0], np.int32),
        decoder=np.array([GPU, CPU, GPU], np.uint8),
    )
    second = RowsMade(
        runs=[_run("C"), _run("A", batch_sizes=[32])],
        run=np.array([1, 0], np.int32),
        decoder=np.array([CPU, CPU], np.uint8),
    )
    # Stacked rows are first's three then second's two; `order` interleaves them.
    made = concat([first, second], order=np.array([0, 3, 1, 4, 2]))
    names = [made.runs[i]["id"] for i in made.run]
    assert names == ["A", "A", "B", "C", "A"]
    assert made.decoder.tolist() == [GPU, CPU, CPU, CPU, GPU]
    assert [r["id"] for r in made.runs] == ["A", "B", "C"]  # each once, in order of first use
    assert made.runs[0]["batch_sizes"] == [32, 64]


def test_compact_drops_runs_no_row_refers_to_and_summary_counts_decoders() -> None:
    made = RowsMade(
        runs=[_run("gone"), _run("A"), _run("B")],
        run=np.array([2, 1, 2, 2], np.int32),
        decoder=np.array([GPU, CPU, CPU, GPU], np.uint8),
    ).compact()
    assert [r["id"] for r in made.runs] == ["B", "A"]
    assert made.run.tolist() == [0, 1, 0, 0]
    summary = made.summary()
    assert [(s["id"], s["rows"], s["decoders"]) for s in summary] == [
        ("B", 3, {"cpu": 1, "gpu": 2}),
        ("A", 1, {"cpu": 1}),
    ]


def test_rows_made_refuses_indices_outside_its_runs() -> None:
    with pytest.raises(ValueError, match="outside"):
        RowsMade(runs=[_run("A")], run=np.array([0, 1], np.int32), decoder=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="1-D"):
        RowsMade(runs=[_run("A")], run=np.zeros(2, np.int32), decoder=np.zeros(3, np.uint8))


def test_the_cache_stores_each_rows_run_and_decoder(tmp_path: Path) -> None:
    made = RowsMade(
        runs=[_run("A", resolved={"device": "cuda:0"}), _run("B")],
        run=np.array([0, 0, 1], np.int32),
        decoder=np.array([GPU, CPU, CPU], np.uint8),
    )
    path = _cache(tmp_path / "c.h5", 3, made)
    with h5py.File(path, "r") as f:  # self-describing for any HDF5 reader
        assert h5py.check_enum_dtype(f["rows/decoder"].dtype) == DECODERS
        assert json.loads(f.attrs["runs"])[0]["resolved"] == {"device": "cuda:0"}
    back = open_cached_rows(path).made
    assert back.runs == made.runs
    assert back.run.tolist() == [0, 0, 1] and back.decoder.tolist() == [GPU, CPU, CPU]
    assert [(r["id"], r["rows"]) for r in cache_info(path)["runs"]] == [("A", 2), ("B", 1)]
    with pytest.raises(ValueError, match="2 rows' runs recorded for 3 rows"):
        _cache(tmp_path / "d.h5", 3, made.subset([0, 1]))


def test_a_cache_without_the_record_reads_as_one_unrecorded_run_from_its_provenance(tmp_path: Path) -> None:
    path = _cache(tmp_path / "c.h5", 4)
    made = open_cached_rows(path).made
    (run,) = made.runs
    assert is_unrecorded(run) and run["id"] == unrecorded_run(PROVENANCE)["id"]  # stable
    assert made.runs[0]["started_at"] == PROVENANCE["created_at"]
    assert made.runs[0]["extraction"] == PROVENANCE["extraction"]
    assert made.decoder.tolist() == [UNRECORDED] * 4


@pytest.mark.parametrize(
    "damage",
    ["index outside the runs", "decoder code unknown", "runs not a list of records", "runs not JSON"],
)
def test_a_damaged_record_never_costs_the_features_verify_names_it_and_repair_rewrites_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    made = RowsMade(runs=[_run("A")], run=np.zeros(3, np.int32), decoder=np.full(3, CPU, np.uint8))
    path = _cache(tmp_path / "c.h5", 3, made, value=1.0)
    with h5py.File(path, "r+") as f:
        if damage == "index outside the runs":
            f["rows/run"][1] = 7
        elif damage == "decoder code unknown":
            f["rows/decoder"][2] = 7  # h5py reads an enum's unknown value back without a word
        elif damage == "runs not a list of records":
            f.attrs["runs"] = "[1, 2]"
        else:
            f.attrs["runs"] = "{not json"
    with caplog.at_level(logging.WARNING, logger="featurekit.cache.store"):
        reused = open_cached_rows(path)  # an extraction reusing this cache still can
        info = cache_info(path)  # and `cache info` still reads it
    assert "reading every row's run as unrecorded" in caplog.text
    assert [is_unrecorded(r) for r in reused.made.runs] == [True] and info["runs"][0]["rows"] == 3
    with open_cache(path) as f, pytest.raises(CacheDamagedError, match="which run made each row is damaged"):
        read_made(f, strict=True)
    report = verify_cache(path)
    assert not report.ok and "which run made each row is damaged" in report.runs_damaged
    assert report.units == 1 and not report.damaged and not report.problems  # the features were checked
    repaired = repair_cache(path)  # nothing to re-extract: the record is rewritten (as unrecorded)
    assert repaired.rows_reextracted == 0
    assert verify_cache(path).ok
    np.testing.assert_array_equal(load_features(path).X, np.ones((3, 2), np.float32))


def test_unrecorded_rows_from_sources_with_other_provenances_stay_apart() -> None:
    older = {**PROVENANCE, "created_at": "2026-10-01T00:00:00+00:00"}
    made = concat([RowsMade.unrecorded(2, PROVENANCE), RowsMade.unrecorded(1, older)])
    assert [made.runs[i]["started_at"] for i in made.run] == [PROVENANCE["created_at"]] * 2 + [
        older["created_at"]
    ]
    # A part's runs that none of its rows use do not shape the merged record.
    unused = RowsMade(
        runs=[_run("A", batch_sizes=[999]), _run("B")], run=np.ones(1, np.int32), decoder=np.ones(1, np.uint8)
    )
    merged = concat(
        [
            unused,
            RowsMade(
                runs=[_run("A", batch_sizes=[8])], run=np.zeros(1, np.int32), decoder=np.ones(1, np.uint8)
            ),
        ]
    )
    assert [r["id"] for r in merged.runs] == ["B", "A"] and merged.runs[1]["batch_sizes"] == [8]


def test_journal_units_keep_their_run_and_decoders_and_batch_sizes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key="k" * 64, overwrite=False)
    keys = [f"{i:064x}" for i in range(5)]
    with UnitWriter(journal, commit_every=3, dim=2, run=_run("A")) as writer:
        writer.add(np.zeros((2, 2)), keys[:2], keys[:2], decoder=np.array([GPU, CPU], np.uint8), batch_size=4)
        writer.add(np.zeros((1, 2)), keys[2:3], keys[2:3], decoder=np.array([GPU], np.uint8), batch_size=2)
        writer.add(np.zeros((2, 2)), keys[3:], keys[3:], batch_size=2)  # no decoder given: cpu
    with UnitWriter(journal, commit_every=3, dim=2, run=_run("B")) as writer:
        writer.add(np.zeros((1, 2)), ["f" * 64], ["x"], decoder=np.array([GPU], np.uint8), batch_size=8)
    # A unit from a featurekit that recorded neither: its rows' run is the journal's provenance.
    journal.commit(features=np.zeros((1, 2), np.float32), keys=["e" * 64], paths=["old"])

    features = journal.read().features
    made = features.made([keys[4], "e" * 64, keys[0], "f" * 64, keys[2]])  # type: ignore[attr-defined]
    old = unrecorded_run(PROVENANCE)["id"]
    assert [made.runs[i]["id"] for i in made.run] == ["A", old, "A", "B", "A"]
    assert made.decoder.tolist() == [CPU, UNRECORDED, GPU, GPU, GPU]
    by_id = {r["id"]: r for r in made.runs}
    assert by_id["A"]["batch_sizes"] == [2, 4]  # over its two units
    assert by_id["B"]["batch_sizes"] == [8]
    assert by_id[old]["extraction"] == PROVENANCE["extraction"]


def test_a_unit_whose_decoder_column_is_damaged_keeps_its_rows_as_unrecorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key="k" * 64, overwrite=False)
    unit = journal.commit(
        features=np.zeros((2, 2), np.float32),
        keys=["a" * 64, "b" * 64],
        paths=["a", "b"],
        run=_run("A"),
        decoder=np.array([CPU, GPU], np.uint8),
    )
    with h5py.File(unit, "r+") as f:
        del f["decoder"]
        f.create_dataset("decoder", data=np.array([CPU], np.uint8))
    with caplog.at_level(logging.WARNING, logger="featurekit.cache.journal"):
        contents = journal.read()
    assert "does not match its rows" in caplog.text
    assert len(contents) == 2 and not contents.damaged  # the features passed their checksum: kept
    made = contents.features.made(["a" * 64, "b" * 64])  # type: ignore[attr-defined]
    assert [is_unrecorded(made.runs[i]) for i in made.run] == [True, True]
    assert journal.verify() == []


def test_consolidating_units_of_an_older_featurekit_keeps_what_their_journal_says(tmp_path: Path) -> None:
    """A journal an older featurekit started, finished by this one with no cache yet: the old units'
    rows carry the journal's provenance as their run, the new unit's rows their own run."""
    from featurekit.extract.job import consolidate

    cache = tmp_path / "c.h5"
    journal = Journal(cache)
    journal.start(provenance=PROVENANCE, key="k" * 64, overwrite=False)
    rows = _rows(3)
    keys = rows.row_keys()
    journal.commit(features=np.zeros((2, 2), np.float32), keys=keys[:2], paths=rows.paths[:2])  # older
    journal.commit(
        features=np.ones((1, 2), np.float32),
        keys=keys[2:],
        paths=rows.paths[2:],
        run=_run("new", batch_sizes=[4]),
        decoder=np.array([GPU], np.uint8),
    )
    consolidate(
        cache,
        rows=rows,
        cached=np.full(3, -1),
        existing=None,
        contents=journal.read(),
        dim=2,
        provenance=PROVENANCE,
    )
    made = open_cached_rows(cache).made
    old, new = made.runs
    assert is_unrecorded(old) and old["extraction"] == PROVENANCE["extraction"]
    assert old["started_at"] == PROVENANCE["created_at"] and old["versions"] == PROVENANCE["versions"]
    assert new["id"] == "new" and made.run.tolist() == [0, 0, 1]
    assert made.decoder.tolist() == [UNRECORDED, UNRECORDED, GPU]
