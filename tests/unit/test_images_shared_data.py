"""The real datasets in ../shared/data load with the expected rows and classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from featurekit.images import load_image, load_image_index

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.shared_data


def dataset(name: str) -> Path:
    """One dataset's folder, or a skip: a partial copy of ../shared/data (the GPU machine's carried
    one holds only what its checks read) skips the datasets it lacks, not every test."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{name} not found at {folder} (the real datasets sit in ../shared/data)")
    return folder


def test_bccd_boxes() -> None:
    index = load_image_index(dataset("bccd") / "boxes.csv", image_root="images", strict=True)
    assert len(index) == 4886 and index.skipped == []
    assert index.class_names == ["Platelets", "RBC", "WBC"]
    assert index.labels is not None
    assert np.bincount(index.labels).tolist() == [361, 4153, 372]
    assert index.boxes is not None and index.boxes.shape == (4886, 4)
    assert len(set(index.paths)) == 364
    crop = load_image(index, 0)
    x1, y1, x2, y2 = index.boxes[0]
    assert crop.size == (int(x2 - x1), int(y2 - y1))


def test_coco128_multilabel_and_onehot_agree() -> None:
    multi = load_image_index(dataset("coco128") / "labels.csv", strict=True)
    onehot = load_image_index(dataset("coco128") / "labels_onehot.csv", strict=True)
    assert len(multi) == len(onehot) == 256
    assert multi.multilabel and onehot.multilabel
    assert len(multi.class_names) == 76 and len(onehot.class_names) == 80  # 76 of 80 classes occur
    assert multi.splits is not None and sorted(set(multi.splits.tolist())) == ["train2017", "val2017"]
    assert multi.labels is not None and onehot.labels is not None
    assert int((multi.labels.sum(axis=1) == 0).sum()) == 2
    assert multi.paths == onehot.paths
    columns = [onehot.class_names.index(name) for name in multi.class_names]
    np.testing.assert_array_equal(onehot.labels[:, columns], multi.labels)


def test_olivetti_npz() -> None:
    index = load_image_index(
        dataset("olivetti") / "olivetti_glasses.npz", npz_label_key="glasses", npz_group_key="subject"
    )
    assert len(index) == 400 and index.class_names == ["0", "1"]
    assert index.labels is not None and int(index.labels.sum()) == 119
    assert index.groups is not None and len(set(index.groups.tolist())) == 40
