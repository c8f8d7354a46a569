"""The `npz` source: pixel arrays, label mapping, groups/splits, and structural errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featurekit.errors import InvalidInputError, SourceValidationError
from featurekit.images import load_image, load_image_index


def test_greyscale_images_with_integer_labels_and_groups(tmp_path: Path, rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    path = tmp_path / "faces.npz"
    np.savez(path, images=images, glasses=np.array([3, 1, 3, 7, 1]), subject=np.array([0, 0, 1, 1, 2]))
    index = load_image_index(path, npz_label_key="glasses", npz_group_key="subject")
    assert index.source == "npz" and index.root == tmp_path
    assert index.paths == [f"faces.npz:{i}" for i in range(5)]
    assert index.class_names == ["1", "3", "7"]
    assert index.labels is not None and index.labels.dtype == np.int64
    assert index.labels.tolist() == [1, 0, 1, 2, 0]
    assert index.groups is not None and index.groups.tolist() == ["0", "0", "1", "1", "2"]
    assert index.splits is None
    assert index.array is not None and np.array_equal(index.array, images)
    img = load_image(index, 3)
    assert img.mode == "RGB" and img.size == (7, 6)
    np.testing.assert_array_equal(np.asarray(img)[:, :, 1], images[3])


def test_rgb_images_with_string_labels_splits_and_auto_keys(tmp_path: Path, rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, size=(4, 5, 5, 3), dtype=np.uint8)
    path = tmp_path / "x.npz"
    np.savez(
        path,
        images=images,
        label=np.array(["cat", "dog", "cat", "ant"]),
        split=np.array(["a", "a", "b", "b"]),
    )
    index = load_image_index(path)
    assert index.class_names == ["ant", "cat", "dog"]
    assert index.labels is not None and index.labels.tolist() == [1, 2, 1, 0]
    assert index.splits is not None and index.splits.tolist() == ["a", "a", "b", "b"]
    np.testing.assert_array_equal(np.asarray(load_image(index, 2)), images[2])


def test_class_names_option_maps_integer_labels_and_flags_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((4, 2, 2, 1), np.uint8), y=np.array([0, 2, 1, 5]))
    index = load_image_index(path, npz_label_key="y", npz_class_names=("no", "maybe", "yes"))
    assert index.class_names == ["no", "maybe", "yes"]
    assert index.paths == ["x.npz:0", "x.npz:1", "x.npz:2"]
    assert index.labels is not None and index.labels.tolist() == [0, 2, 1]
    assert [(p.row, p.reason) for p in index.skipped] == [(3, "label 5 is outside 0..2 (3 npz_class_names)")]
    with pytest.raises(SourceValidationError, match=r"x.npz:3: label 5 is outside 0..2"):
        load_image_index(path, npz_label_key="y", npz_class_names=("no", "maybe", "yes"), strict=True)


def test_rgba_rows_are_composited_on_the_background(tmp_path: Path) -> None:
    images = np.zeros((1, 2, 2, 4), np.uint8)
    images[0, :, :, 0] = 200  # red, fully transparent
    path = tmp_path / "a.npz"
    np.savez(path, images=images)
    index = load_image_index(path)
    assert index.labels is None
    assert np.asarray(load_image(index, 0)).tolist() == [[[255, 255, 255]] * 2] * 2
    assert np.asarray(load_image(index, 0, background=(0, 0, 0))).max() == 0


@pytest.mark.parametrize(
    ("arrays", "options", "message"),
    [
        (
            {"pixels": np.zeros((2, 3, 3), np.uint8)},
            {},
            r"no images array 'images'; the file holds \['pixels'\]",
        ),
        ({"images": np.zeros((2, 3, 3), np.float32)}, {}, r"has dtype float32; expected uint8"),
        ({"images": np.zeros((2, 3), np.uint8)}, {}, r"has shape \(2, 3\); expected \(N, H, W\)"),
        ({"images": np.zeros((2, 3, 3, 2), np.uint8)}, {}, r"with C in 1, 3, 4"),
        (
            {"images": np.zeros((2, 3, 3), np.uint8)},
            {"npz_label_key": "y"},
            r"no array 'y' \(npz_label_key\)",
        ),
        (
            {"images": np.zeros((2, 3, 3), np.uint8), "label": np.zeros(3)},
            {},
            r"array 'label' has shape \(3,\); expected \(2,\)",
        ),
        ({"images": np.zeros((0, 3, 3), np.uint8)}, {}, r"no usable images \(0 row"),
    ],
)
def test_structural_errors_always_raise(
    tmp_path: Path, arrays: dict[str, np.ndarray], options: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(SourceValidationError, match=message):
        load_image_index(path, **options)


def test_object_arrays_and_non_npz_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, images=np.zeros((1, 2, 2), np.uint8), label=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SourceValidationError, match=r"holds object arrays"):
        load_image_index(path)
    fake = tmp_path / "fake.npz"
    fake.write_text("not a zip")
    with pytest.raises(InvalidInputError, match=r"fake.npz: not a readable .npz file"):
        load_image_index(fake)


def test_multi_hot_and_float_labels(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    hot = np.array([[1, 0, 1], [0, 0, 0], [0, 2, 1]])
    np.savez(path, images=np.zeros((3, 2, 2), np.uint8), labels=hot)
    index = load_image_index(path, npz_class_names=("a", "b", "c"))
    assert index.multilabel and index.class_names == ["a", "b", "c"]
    assert index.labels is not None and index.labels.tolist() == [[1, 0, 1], [0, 0, 0]]
    assert [(p.row, p.reason) for p in index.skipped] == [(2, "multi-hot labels must be 0 or 1")]
    np.savez(path, images=np.zeros((2, 2, 2), np.uint8), label=np.array([1.0, 0.0]))
    floats = load_image_index(path)
    assert floats.class_names == ["0", "1"] and floats.labels is not None and floats.labels.tolist() == [1, 0]
