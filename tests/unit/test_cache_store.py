"""The HDF5 store: round trips, atomic writes, provenance keys, row identity and reuse."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from featurekit.cache import (
    FeatureSet,
    RowTable,
    cache_info,
    first_difference,
    load_features,
    provenance_key,
    read_provenance,
    write_cache,
)
from featurekit.cache.reuse import plan_reuse
from featurekit.errors import CacheFormatError, PathNotFoundError

PROVENANCE = {
    "backbone": "test_resnet",
    "weights": {"spec": "random", "sha256": "ab" * 32, "file_sha256": None, "seed": 0},
    "preprocess": {"img_size": 32, "resize_mode": "crop", "mean": [0.5, 0.5, 0.5]},
    "precision": "float32",
    "extraction": {"batch_size": 8},
    "versions": {"torch": "2.14.1"},
    "created_at": "2026-11-22T00:00:00+00:00",
}


def _rows(n: int, rng: np.random.Generator, *, boxes: bool = False, multilabel: bool = False) -> RowTable:
    labels = rng.integers(0, 2, size=(n, 3)).astype(np.uint8) if multilabel else rng.integers(-1, 3, size=n)
    return RowTable(
        paths=[f"cls/{i:03d}.jpg" for i in range(n)],
        content_hashes=[f"{i:064x}" for i in range(n)],
        class_names=["a", "b", "c"],
        labels=labels,
        boxes=rng.uniform(0, 10, size=(n, 4)) if boxes else None,
        groups=np.array([f"g{i % 4}" for i in range(n)], dtype=object),
        splits=np.array(["train" if i % 2 else "test" for i in range(n)], dtype=object),
    )


@pytest.mark.parametrize(("boxes", "multilabel"), [(False, False), (True, False), (False, True)])
def test_round_trip_keeps_every_column(
    tmp_path: Path, rng: np.random.Generator, boxes: bool, multilabel: bool
) -> None:
    rows = _rows(7, rng, boxes=boxes, multilabel=multilabel)
    X = rng.normal(size=(7, 5)).astype(np.float32)
    path = write_cache(tmp_path / "c.h5", features=X, rows=rows, provenance=PROVENANCE)

    loaded = load_features(path)
    np.testing.assert_array_equal(loaded.X, X)
    assert loaded.rows.paths == rows.paths
    assert loaded.rows.content_hashes == rows.content_hashes
    assert loaded.class_names == ["a", "b", "c"]
    assert loaded.y is not None and rows.labels is not None
    np.testing.assert_array_equal(loaded.y, rows.labels)
    assert loaded.multilabel is multilabel
    assert list(loaded.groups) == list(rows.groups)  # type: ignore[arg-type]
    assert list(loaded.splits) == list(rows.splits)  # type: ignore[arg-type]
    if boxes:
        np.testing.assert_array_equal(loaded.rows.boxes, rows.boxes)
    assert loaded.provenance == PROVENANCE
    assert loaded.provenance_key == provenance_key(PROVENANCE)


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path, rng: np.random.Generator) -> None:
    rows = _rows(3, rng)
    target = tmp_path / "c.h5"
    write_cache(target, features=np.ones((3, 2), np.float32), rows=rows, provenance=PROVENANCE)
    with pytest.raises(ValueError, match="do not match"):
        write_cache(target, features=np.ones((4, 2), np.float32), rows=rows, provenance=PROVENANCE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5"]
    np.testing.assert_array_equal(load_features(target).X, np.ones((3, 2)))  # old cache intact


def test_writing_unit_by_unit_gives_the_same_cache(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`write_cache_blocks` asks for one unit at a time and writes what `write_cache` writes; a block of
    the wrong shape stops the write and leaves the old cache as it was."""
    from featurekit.cache import write_cache_blocks
    from featurekit.cache.verify import verify_cache

    monkeypatch.setattr("featurekit.cache.checksum.ROWS_PER_UNIT", 4)
    rows, X = _rows(10, rng), rng.normal(size=(10, 5)).astype(np.float32)
    whole = write_cache(tmp_path / "whole.h5", features=X, rows=rows, provenance=PROVENANCE)
    asked: list[tuple[int, int]] = []

    def block(start: int, stop: int) -> np.ndarray:
        asked.append((start, stop))
        return X[start:stop]

    blocks = write_cache_blocks(tmp_path / "blocks.h5", dim=5, block=block, rows=rows, provenance=PROVENANCE)
    assert asked == [(0, 4), (4, 8), (8, 10)]
    np.testing.assert_array_equal(load_features(blocks).X, X)
    with h5py.File(whole) as a, h5py.File(blocks) as b:
        np.testing.assert_array_equal(a["units/sha256"][()], b["units/sha256"][()])
        assert a["features"].chunks == b["features"].chunks and b["features"].fletcher32
    assert verify_cache(blocks).ok
    with pytest.raises(ValueError, match=r"rows 4:8 are not \(4, 5\)"):
        write_cache_blocks(
            blocks, dim=5, block=lambda a, b: X[a : b - (a == 4)], rows=rows, provenance=PROVENANCE
        )
    np.testing.assert_array_equal(load_features(blocks).X, X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.h5", "whole.h5"]


def test_cached_rows_keep_features_on_disk_and_read_any_rows_in_order(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from featurekit.cache import open_cached_rows
    from featurekit.errors import CacheDamagedError

    rows, X = _rows(50, rng), rng.normal(size=(50, 5)).astype(np.float32)
    path = write_cache(tmp_path / "c.h5", features=X, rows=rows, provenance=PROVENANCE)
    cached = open_cached_rows(path)
    assert cached.rows.paths == rows.paths and cached.provenance_key == provenance_key(PROVENANCE)
    assert not hasattr(cached, "X")
    with cached.reader() as take:
        for indices in ([3, 4, 5, 7], [7, 3, 3, 5], [0, 49], [49, 0, 25, 1], []):
            np.testing.assert_array_equal(take(np.array(indices, dtype=np.int64)), X[indices])
    # A damaged cache is refused when opened, before any extraction work, naming the file.
    with h5py.File(path, "r") as f:
        offset = f["features"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CacheDamagedError, match=r"c\.h5: feature data is damaged"):
        open_cached_rows(path)


def test_cached_rows_asked_for_far_out_of_order_are_read_whole_and_a_replaced_file_is_refused(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featurekit.cache import open_cached_rows
    from featurekit.errors import CacheDamagedError

    monkeypatch.setattr("featurekit.cache.checksum.ROWS_PER_UNIT", 8)
    rows, X = _rows(64, rng), rng.normal(size=(64, 300)).astype(np.float32)
    path = write_cache(tmp_path / "c.h5", features=X, rows=rows, provenance=PROVENANCE)
    cached = open_cached_rows(path)
    small = dataclasses.replace(cached, chunk_rows=4)  # 16 chunks of 4 rows
    assert not small.scattered(np.arange(64))  # in order: each chunk read about once
    shuffled = rng.permutation(64)
    assert small.scattered(shuffled)  # every block of 8 touches ~8 chunks: 64 reads of 16 chunks
    with small.reader(whole=True) as take:
        np.testing.assert_array_equal(take(shuffled), X[shuffled])
    write_cache(path, features=X + 1, rows=rows, provenance=PROVENANCE)  # replaced behind its back
    with pytest.raises(CacheDamagedError, match="was replaced while this extraction ran"), small.reader():
        pass


def test_key_ignores_settings_that_do_not_change_features() -> None:
    other = {
        **PROVENANCE,
        "extraction": {"batch_size": 256},
        "versions": {"torch": "2.11"},
        "created_at": "later",
        "weights": {**PROVENANCE["weights"], "spec": "file:/x.pth"},
    }
    assert provenance_key(other) == provenance_key(PROVENANCE)
    assert first_difference(PROVENANCE, other) is None


def test_key_changes_and_difference_is_named_for_feature_settings() -> None:
    changed = {**PROVENANCE, "preprocess": {**PROVENANCE["preprocess"], "img_size": 64}}
    assert provenance_key(changed) != provenance_key(PROVENANCE)
    assert first_difference(PROVENANCE, changed) == ("preprocess.img_size", 32, 64)
    other_weights = {**PROVENANCE, "weights": {**PROVENANCE["weights"], "sha256": "cd" * 32}}
    assert first_difference(PROVENANCE, other_weights) == ("weights.sha256", "ab" * 32, "cd" * 32)


def test_reading_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match=r"missing\.h5"):
        load_features(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(CacheFormatError, match=r"junk\.h5"):
        read_provenance(junk)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(CacheFormatError, match="not a featurekit cache"):
        load_features(tmp_path / "other.h5")


def test_info_summarises_rows_dimension_and_provenance(tmp_path: Path, rng: np.random.Generator) -> None:
    path = write_cache(
        tmp_path / "c.h5", features=np.zeros((4, 6), np.float32), rows=_rows(4, rng), provenance=PROVENANCE
    )
    info = cache_info(path)
    assert (info["rows"], info["feature_dim"], info["classes"]) == (4, 6, ["a", "b", "c"])
    assert info["provenance"]["backbone"] == "test_resnet"


def test_row_identity_is_content_plus_box(rng: np.random.Generator) -> None:
    rows = RowTable(
        paths=["a.jpg", "b.jpg", "a.jpg"],
        content_hashes=["h1", "h1", "h1"],
        boxes=np.array([[np.nan] * 4, [np.nan] * 4, [1, 2, 3, 4]]),
    )
    assert rows.row_keys() == ["h1", "h1", "h1@1,2,3,4"]


def test_reuse_plan_reuses_cached_rows_and_extracts_duplicates_once(rng: np.random.Generator) -> None:
    existing_rows = RowTable(paths=["old/x.jpg"], content_hashes=["hx"])
    existing = FeatureSet(
        X=np.ones((1, 2), np.float32), rows=existing_rows, provenance={}, provenance_key="k"
    )
    # x moved to a new folder (same content), y new, z a byte-identical copy of y
    requested = RowTable(paths=["new/x.jpg", "new/y.jpg", "new/z.jpg"], content_hashes=["hx", "hy", "hy"])
    plan = plan_reuse(requested, existing)
    assert plan.cached.tolist() == [0, -1, -1]
    assert plan.to_extract == [1]
    assert plan.same_as.tolist() == [0, 1, 1]
