"""The journal and its consolidation: units committed atomically, crashes that lose at most the unit
in flight, reads that match a simple model (a property-based state machine), lock and writer."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from featurekit.cache import RowTable, faults, load_features, remove_temporaries, write_cache
from featurekit.cache.journal import FailedRow, Journal, journal_dir
from featurekit.cache.lock import CacheLock, lock_path
from featurekit.cache.writer import UnitWriter
from featurekit.errors import CacheLockedError, ProvenanceMismatchError

DIM = 3
PROVENANCE = {"backbone": "toy", "preprocess": {"img_size": 8}, "extraction": {"batch_size": 1}}
KEY = "k" * 64


def _vector(key: str) -> np.ndarray:
    seed = int.from_bytes(key.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def _digest(i: int) -> str:
    return f"{i:064x}"


class Crash(BaseException):
    """Stands for kill -9 at a crash point (BaseException: nothing may catch it as an error)."""


def test_units_round_trip_with_failures(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key=KEY, overwrite=False)
    keys = [_digest(i) for i in range(4)]
    features = np.stack([_vector(k) for k in keys])
    journal.commit(
        features=features,
        keys=keys,
        paths=[f"p{i}.png" for i in range(4)],
        failures=[FailedRow(_digest(9), "bad.png", "decode", "truncated image")],
    )
    contents = Journal(tmp_path / "c.h5").read()
    assert contents.units == 1 and not contents.damaged
    np.testing.assert_array_equal(np.stack([contents.features[k] for k in keys]), features)
    assert contents.failures[_digest(9)] == FailedRow(_digest(9), "bad.png", "decode", "truncated image")


def test_a_bit_flip_in_a_unit_is_detected_and_the_unit_left_out(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key=KEY, overwrite=False)
    keys = [_digest(i) for i in range(4)]
    features = np.stack([_vector(k) for k in keys])
    unit = journal.commit(features=features, keys=keys, paths=keys)
    with h5py.File(unit, "r") as f:
        offset = f["features"].id.get_offset()
    raw = bytearray(unit.read_bytes())
    raw[offset + 5] ^= 0x01
    unit.write_bytes(bytes(raw))
    contents = journal.read()
    assert contents.units == 0 and not contents.features
    assert contents.damaged == [f"journal unit {unit.name} is damaged (checksum mismatch)"]
    assert [p.reason for p in journal.verify()] == ["checksum mismatch"]


def test_read_keeps_where_rows_are_and_loads_a_few_units_at_a_time(tmp_path: Path) -> None:
    """A million-row journal is not held in memory: `read` verifies each unit and keeps only where
    its rows are; features are read back on demand, a bounded number of units at a time."""
    from featurekit.cache.journal import UnitDamaged

    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key=KEY, overwrite=False)
    keys = [_digest(i) for i in range(40)]
    units = [journal.commit(features=_vector(k)[None], keys=[k], paths=[k]) for k in keys]
    contents = journal.read()
    features = contents.features
    assert contents.units == 40 and len(features) == 40 and set(features) == set(keys)
    assert not features._loaded  # type: ignore[attr-defined]
    for key in keys:
        np.testing.assert_array_equal(features[key], _vector(key))
        assert len(features._loaded) <= 4  # type: ignore[attr-defined]
    assert _digest(99) not in features
    # A unit altered after it was verified is verified again when it is read back.
    with h5py.File(units[0], "r+") as f:
        f["features"][0, 0] += 1
    with pytest.raises(UnitDamaged, match="checksum mismatch"):
        features[keys[0]]


def test_consolidation_reads_each_unit_about_once_in_any_order_with_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows in source order with byte-identical duplicates, then the same rows re-sorted (a source
    reordered before a resume): correct features either way, and each unit read about once."""
    from featurekit.cache import journal as journal_module
    from featurekit.cache.verify import verify_cache
    from featurekit.extract.job import consolidate

    monkeypatch.setattr("featurekit.cache.checksum.ROWS_PER_UNIT", 16)
    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key=KEY, overwrite=False)
    keys = [_digest(i) for i in range(200)]
    for start in range(0, 200, 10):  # 20 units of 10 rows
        part = keys[start : start + 10]
        journal.commit(features=np.stack([_vector(k) for k in part]), keys=part, paths=part)
    reads: list[Path] = []
    real_read_unit = journal_module.read_unit

    def counting(path: Path) -> tuple:
        reads.append(path)
        return real_read_unit(path)

    monkeypatch.setattr(journal_module, "read_unit", counting)
    rng = np.random.default_rng(0)
    in_order = keys + [keys[i] for i in rng.choice(200, 20)]  # 20 duplicates of early rows, at the end
    shuffled = [in_order[i] for i in rng.permutation(len(in_order))]
    for order, most_reads in ((in_order, 2 * 20), (shuffled, 2 * 20)):
        reads.clear()
        contents = journal.read()
        at_read = len(reads)
        rows = RowTable(paths=order, content_hashes=order)
        out = tmp_path / f"out-{len(reads)}-{order is shuffled}.h5"
        consolidate(
            out, rows=rows, cached=np.full(len(order), -1), existing=None, contents=contents, dim=DIM,
            provenance=PROVENANCE,
        )  # fmt: skip
        assert len(reads) - at_read <= most_reads
        np.testing.assert_array_equal(load_features(out).X, np.stack([_vector(k) for k in order]))
        assert verify_cache(out).ok


def test_a_journal_made_with_other_settings_is_refused_naming_the_setting(tmp_path: Path) -> None:
    Journal(tmp_path / "c.h5").start(provenance=PROVENANCE, key=KEY, overwrite=False)
    other = {**PROVENANCE, "preprocess": {"img_size": 16}}
    with pytest.raises(ProvenanceMismatchError, match=r"preprocess\.img_size: it has 8, requested 16"):
        Journal(tmp_path / "c.h5").start(provenance=other, key="o" * 64, overwrite=False)
    Journal(tmp_path / "c.h5").start(provenance=other, key="o" * 64, overwrite=True)
    meta = json.loads((journal_dir(tmp_path / "c.h5") / "meta.json").read_text())
    assert meta["provenance_key"] == "o" * 64


def test_the_writer_commits_units_of_commit_every_rows_and_the_rest_on_close(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "c.h5")
    journal.start(provenance=PROVENANCE, key=KEY, overwrite=False)
    with UnitWriter(journal, commit_every=4, dim=DIM) as writer:
        for i in range(0, 10, 2):
            keys = [_digest(i), _digest(i + 1)]
            writer.add(np.stack([_vector(k) for k in keys]), keys, keys)
    assert writer.committed_rows == 10 and writer.committed_units == 3  # 4 + 4 + 2
    assert [len(h5py.File(p, "r")["key"]) for p in journal.unit_paths()] == [4, 4, 2]


def test_a_writer_thread_error_reaches_the_caller(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "c.h5")
    journal.dir.write_text("a file where the journal's folder should be")
    writer = UnitWriter(journal, commit_every=1, dim=DIM)
    writer.add(np.zeros((1, DIM), np.float32), [_digest(1)], ["p"])
    with pytest.raises(OSError):
        writer.close()


# --------------------------------------------------------------------------- the lock


def _hold_lock(cache: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    CacheLock(Path(cache)).acquire()
    ready.set()
    signal.pause()


def test_a_second_holder_fails_fast_naming_the_process_and_a_dead_ones_lock_is_reclaimed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "c.h5"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_lock, args=(str(cache), ready))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(
            CacheLockedError, match=rf"c\.h5 is being written by process {holder.pid} on host "
        ):
            CacheLock(cache).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # dies holding it: the kernel drops the flock
        holder.join()
    assert lock_path(cache).exists()
    with CacheLock(cache) as lock:
        assert lock.reclaimed_from is not None and lock.reclaimed_from["pid"] == holder.pid
    assert "reclaimed the lock" in caplog.text
    assert not lock_path(cache).exists()  # released cleanly


def test_two_locks_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    with CacheLock(tmp_path / "c.h5"), pytest.raises(CacheLockedError):
        CacheLock(tmp_path / "c.h5").acquire()


# --------------------------------------------------------------------------- the model


class JournalMachine(RuleBasedStateMachine):
    """Append / crash / resume / consolidate / read against a dict model of committed rows."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="fk-journal-"))
        self.cache = self.folder / "c.h5"
        self.in_journal: dict[str, np.ndarray] = {}
        self.in_cache: dict[str, np.ndarray] = {}
        self.next_key = 0
        self.unit_keys: dict[Path, list[str]] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize()
    def start(self) -> None:
        self._journal().start(provenance=PROVENANCE, key=KEY, overwrite=False)

    def _journal(self) -> Journal:
        return Journal(self.cache)  # a fresh object each time, as a rerun after a crash would have

    def _new_keys(self, count: int) -> list[str]:
        keys = [_digest(self.next_key + i) for i in range(count)]
        self.next_key += count
        return keys

    def _commit(self, keys: list[str]) -> Path:
        features = np.array([_vector(k) for k in keys], dtype=np.float32).reshape(-1, DIM)
        return self._journal().commit(features=features, keys=keys, paths=keys)

    @rule(count=st.integers(1, 5))
    def append(self, count: int) -> None:
        keys = self._new_keys(count)
        unit = self._commit(keys)
        self.unit_keys[unit] = keys
        self.in_journal.update({k: _vector(k) for k in keys})

    @rule(count=st.integers(1, 5), point=st.sampled_from(["before-rename", "unit-committed"]))
    def crash_while_committing(self, count: int, point: str) -> None:
        keys = self._new_keys(count)
        crashed = _crash_at(point, lambda: self._commit(keys), leave_temporary=self.cache.parent)
        if point == "unit-committed":  # renamed before the crash: committed
            self.in_journal.update({k: _vector(k) for k in keys})
            self.unit_keys[crashed] = keys

    @rule()
    def resume(self) -> None:
        # What a rerun does first, under the lock: clear temporaries, then read what was committed.
        remove_temporaries(self.cache)
        self._journal().start(provenance=PROVENANCE, key=KEY, overwrite=False)
        leftovers = [p for p in self.folder.rglob("*") if ".tmp-" in p.name]
        assert not leftovers

    @precondition(lambda self: bool(self.unit_keys))
    @rule(data=st.data())
    def damage_a_unit(self, data: st.DataObject) -> None:
        unit = data.draw(st.sampled_from(sorted(self.unit_keys)))
        unit.write_bytes(unit.read_bytes()[:200])  # truncated
        for key in self.unit_keys.pop(unit):
            self.in_journal.pop(key, None)

    @rule(crash=st.booleans())
    def consolidate(self, crash: bool) -> None:
        merged = {**self.in_cache, **self.in_journal}
        keys = sorted(merged)
        rows = RowTable(paths=keys, content_hashes=keys)

        def write() -> None:
            features = np.array([merged[k] for k in keys], dtype=np.float32).reshape(-1, DIM)
            write_cache(self.cache, features=features, rows=rows, provenance=PROVENANCE)

        if crash:  # killed before the new cache is renamed into place: nothing changes
            _crash_at("before-rename", write, leave_temporary=self.cache.parent)
            return
        write()
        self._journal().remove()
        self._journal().start(provenance=PROVENANCE, key=KEY, overwrite=False)
        self.in_cache, self.in_journal, self.unit_keys = merged, {}, {}

    @invariant()
    def committed_rows_read_back_exactly(self) -> None:
        contents = self._journal().read()
        assert set(contents.features) == set(self.in_journal)
        for key, vector in self.in_journal.items():
            np.testing.assert_array_equal(contents.features[key], vector)
        if self.cache.exists():
            cached = load_features(self.cache)
            assert cached.rows.content_hashes == sorted(self.in_cache)
            for key, vector in zip(cached.rows.content_hashes, cached.X, strict=True):
                np.testing.assert_array_equal(vector, self.in_cache[key])
        else:
            assert not self.in_cache


def _crash_at(point: str, action, *, leave_temporary: Path):  # type: ignore[no-untyped-def]
    """Run `action`, 'killed' at `point`; a kill also leaves the temporary file behind."""
    original = faults.crash_point
    result: list[Path] = []

    def crash(name: str) -> None:
        if name == point:
            if name == "before-rename":  # as kill -9 would: the temporary file stays
                for tmp in leave_temporary.rglob(".*.tmp-*"):
                    shutil.copy(tmp, tmp.with_name(tmp.name.replace(".tmp-", ".tmp-9")))
            raise Crash

    faults.crash_point = crash  # type: ignore[assignment]
    try:
        result.append(action())
    except Crash:
        pass
    finally:
        faults.crash_point = original  # type: ignore[assignment]
    newest = sorted(Journal(leave_temporary / "c.h5").unit_paths(), key=lambda p: p.stat().st_mtime_ns)
    return result[0] if result else (newest[-1] if newest else None)


JournalMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_journal_against_a_model = JournalMachine.TestCase
