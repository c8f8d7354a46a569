"""The `folder` and `unlabelled` sources: class subfolders, recursion, hidden entries, determinism."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.errors import InvalidInputError, SourceValidationError
from featurekit.images import load_image_index


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path)


@pytest.fixture
def class_tree(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    for rel in (
        "dog/b.jpg",
        "dog/a.png",
        "dog/nested/deeper/c.JPEG",
        "cat/z.webp",
        "cat/y.TIF",
        "bird/x.bmp",
    ):
        _image(root / rel)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"hidden")
    _image(root / "cat" / ".thumbs" / "t.png")  # hidden folder inside a class
    _image(root / ".cache" / "q.png")  # hidden class folder
    (root / "empty_class").mkdir()
    return root


def test_folder_classes_labels_and_sorted_recursive_paths(
    class_tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        index = load_image_index(class_tree, source="folder")
    assert index.source == "folder"
    assert index.class_names == ["bird", "cat", "dog"]
    assert index.paths == [
        "bird/x.bmp",
        "cat/y.TIF",
        "cat/z.webp",
        "dog/a.png",
        "dog/b.jpg",
        "dog/nested/deeper/c.JPEG",
    ]
    assert index.labels is not None and index.labels.dtype == np.int64
    assert index.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert index.skipped == []
    assert "ignored 1 subfolder(s) without images: ['empty_class']" in caplog.text
    assert index.file_path(5) == class_tree / "dog" / "nested" / "deeper" / "c.JPEG"


def test_folder_loose_top_level_images_are_skipped_or_raise(class_tree: Path) -> None:
    _image(class_tree / "stray.png")
    index = load_image_index(class_tree, source="folder")
    assert len(index) == 6
    assert [(p.file, p.row) for p in index.skipped] == [(str(class_tree / "stray.png"), None)]
    assert "image outside any class folder" in index.skipped[0].reason
    with pytest.raises(
        SourceValidationError, match=r"(?s)1 problem\(s\).*stray.png: image outside any class folder"
    ):
        load_image_index(class_tree, source="folder", strict=True)


def test_unlabelled_is_recursive_and_has_no_labels(tmp_path: Path) -> None:
    for rel in ("b.png", "a.jpg", "2024/c.gif", ".git/d.png"):
        _image(tmp_path / rel)
    index = load_image_index(tmp_path, source="unlabelled")
    assert index.source == "unlabelled"
    assert index.paths == ["2024/c.gif", "a.jpg", "b.png"]
    assert index.labels is None and index.class_names == [] and not index.labelled


def test_folder_sources_need_a_folder(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    with pytest.raises(InvalidInputError, match=r"the 'folder' source reads a folder, but .*a.png is a file"):
        load_image_index(tmp_path / "a.png", source="folder")
    (tmp_path / "none").mkdir()
    with pytest.raises(SourceValidationError, match=r"no usable images \(0 row"):
        load_image_index(tmp_path / "none", source="unlabelled")


def test_folder_listing_is_deterministic(class_tree: Path) -> None:
    first = load_image_index(class_tree, source="folder")
    second = load_image_index(class_tree, source="folder")
    assert first.paths == second.paths
    assert first.labels is not None and second.labels is not None
    assert np.array_equal(first.labels, second.labels)
