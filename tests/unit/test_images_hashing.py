"""Content hashes: file bytes (not locations) for files, shape+dtype+bytes for npz rows."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.images import (
    content_hashes,
    hash_contents,
    hash_share,
    hashing,
    load_image_index,
    rows_from_files,
)
from featurekit.images.hashing import array_sha256


@pytest.fixture
def tree(tmp_path: Path, rng: np.random.Generator) -> Path:
    root = tmp_path / "data"
    shared = rng.integers(0, 256, size=(5, 5, 3), dtype=np.uint8)
    for rel, array in (("a/1.png", shared), ("b/2.png", shared), ("b/3.png", shared[::-1].copy())):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(root / rel)
    return root


def test_hashes_are_sha256_of_file_bytes(tree: Path) -> None:
    index = load_image_index(tree)
    hashes = content_hashes(index)
    assert hashes == [hashlib.sha256(index.file_path(i).read_bytes()).hexdigest() for i in range(3)]
    assert hashes[0] == hashes[1] != hashes[2]  # same bytes, different folders -> same hash


def test_moved_folder_keeps_its_hashes(tree: Path, tmp_path: Path) -> None:
    before = content_hashes(load_image_index(tree))
    moved = shutil.move(tree, tmp_path / "elsewhere" / "renamed")
    assert content_hashes(load_image_index(Path(moved))) == before


def test_box_rows_share_the_file_hash_and_threads_agree(tree: Path) -> None:
    (tree / "boxes.csv").write_text("path,x1,y1,x2,y2\na/1.png,0,0,2,2\na/1.png,1,1,3,3\nb/3.png,0,0,1,1\n")
    index = load_image_index(tree / "boxes.csv")
    hashes = content_hashes(index)
    assert hashes[0] == hashes[1] != hashes[2]
    assert content_hashes(index, n_jobs=2) == hashes


def test_unreadable_file_hashes_to_empty_string(tree: Path) -> None:
    index = load_image_index(tree)
    (tree / "b" / "2.png").unlink()  # vanished after indexing
    hashes = content_hashes(index)
    assert hashes[1] == "" and len(hashes[0]) == 64 and len(hashes[2]) == 64


def test_npz_rows_hash_shape_dtype_and_pixels(tmp_path: Path) -> None:
    images = np.zeros((3, 4, 4), np.uint8)
    images[2, 0, 0] = 1
    np.savez(tmp_path / "x.npz", images=images)
    hashes = content_hashes(load_image_index(tmp_path / "x.npz"))
    expected = hashlib.sha256(b"shape=4,4;dtype=|u1;" + images[0].tobytes()).hexdigest()
    assert hashes[0] == hashes[1] == expected != hashes[2]
    assert array_sha256(np.zeros((2, 8), np.uint8)) != array_sha256(np.zeros((4, 4), np.uint8))
    assert array_sha256(np.zeros((4, 4), np.uint8)) != array_sha256(np.zeros((4, 2), np.uint16))


def test_shares_partition_the_files_and_rebuild_every_row(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "boxes.csv").write_text(
        "path,x1,y1,x2,y2\na/1.png,0,0,2,2\na/1.png,1,1,3,3\nb/2.png,0,0,1,1\nb/3.png,0,0,1,1\n"
    )
    index = load_image_index(tree / "boxes.csv")
    expected = hash_contents(index)
    opened: list[Path] = []
    real_hash_file = hashing.hash_file
    monkeypatch.setattr(hashing, "hash_file", lambda path: opened.append(path) or real_hash_file(path))
    for parts in (1, 2, 3, 4):
        opened.clear()
        shares = [hash_share(index, part=k, parts=parts) for k in range(parts)]
        assert sum(len(s) for s in shares) == 3  # each distinct file in exactly one share
        assert len(opened) == len(set(opened)) == 3  # and read once in all
        merged = {path: value for share in shares for path, value in share.items()}
        assert rows_from_files(index, merged) == expected


def test_npz_shares_rebuild_every_row(tmp_path: Path) -> None:
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    np.savez(tmp_path / "x.npz", images=images)
    index = load_image_index(tmp_path / "x.npz")
    shares = [hash_share(index, part=k, parts=2) for k in range(2)]
    assert [len(s) for s in shares] == [2, 3]
    assert rows_from_files(index, shares[0] | shares[1]) == hash_contents(index)


def test_a_share_outside_the_parts_is_refused(tree: Path) -> None:
    with pytest.raises(ValueError, match=r"part 2 is not in 0\.\.1"):
        hash_share(load_image_index(tree), part=2, parts=2)
