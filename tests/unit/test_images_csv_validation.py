"""CSV validation before any model work: every bad row reported with its line, skipped or (strict) fatal."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from featurekit.errors import SourceValidationError
from featurekit.images import load_image, load_image_index
from featurekit.images.sources import csv_manifest


def _image(path: Path, size: tuple[int, int] = (40, 30), *, orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, (90, 120, 150))
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif, quality=95)


def _csv(folder: Path, text: str) -> Path:
    path = folder / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    _image(tmp_path / "wide.png", (40, 30))
    _image(tmp_path / "square.png", (20, 20))
    _image(tmp_path / "rotated.jpg", (40, 30), orientation=6)  # displayed 30 wide, 40 tall
    _image(tmp_path / "upright.jpg", (40, 30), orientation=1)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp_path


EVERY_PROBLEM = (
    "path,x1,y1,x2,y2,label\n"  # line 1
    "wide.png,1,1,10,10,cat\n"  # 2  good
    "missing.png,1,1,10,10,cat\n"  # 3  missing file
    "wide.png,1,1,10,10,cat\n"  # 4  exact duplicate of line 2
    "wide.png,nan,1,10,10,cat\n"  # 5  NaN coordinate
    "wide.png,-3,1,10,10,cat\n"  # 6  negative coordinate
    "wide.png,5,1,5,10,cat\n"  # 7  zero width
    "wide.png,1,9,10,9,cat\n"  # 8  zero height
    "wide.png,10,1,5,10,cat\n"  # 9  inverted x
    "square.png,20,0,30,5,dog\n"  # 10 entirely right of a 20x20 image
    "square.png,0,25,5,30,dog\n"  # 11 entirely below it
    "square.png,15,15,35,35,dog\n"  # 12 partly outside: kept, clamped when cropping
    "wide.png,2,2,8,8,NaN\n"  # 13 a missing label written out as text
    "wide.png,1,1,10,10,dog\n"  # 14 same path and box as line 2, another label
    "upright.jpg,35,0,39,5,cat\n"  # 15 good: inside the 40x30 upright image
    "rotated.jpg,35,0,39,5,cat\n"  # 16 outside the displayed 30x40 frame, inside the stored one: kept
    "rotated.jpg,0,35,5,39,cat\n"  # 17 inside the displayed frame (below y=30): kept
    "rotated.jpg,41,41,50,50,cat\n"  # 18 outside both frames
    "upright.jpg,0,35,5,39,cat\n"  # 19 below a 40x30 image without rotation
    "broken.png,0,0,5,5,cat\n"  # 20 header unreadable: kept here, the decoder reports it
)

EXPECTED = {
    3: "file not found: ",
    4: "duplicate of line 2 (same path, box and label); line 4 is skipped",
    5: "box column 'x1' holds 'nan'; box coordinates must be finite numbers",
    6: "box (-3, 1, 10, 10) has a negative coordinate",
    7: "box (5, 1, 5, 10) has zero area (x1 == x2)",
    8: "box (1, 9, 10, 9) has zero area (y1 == y2)",
    9: "box (10, 1, 5, 10) is inverted (x2 < x1)",
    10: "box (20, 0, 30, 5) lies entirely outside the 20x20 image; fix the box coordinates",
    11: "box (0, 25, 5, 30) lies entirely outside the 20x20 image; fix the box coordinates",
    13: "label 'NaN' in column 'label' is a missing value (NaN), not a class",
    14: (
        "duplicate of line 2 (same path and box) with another label ('cat' on line 2, 'dog' here); "
        "line 2 is kept, remove one of the two rows"
    ),
    18: (
        "box (41, 41, 50, 50) lies entirely outside the 40x30 image (also when turned by its EXIF "
        "orientation); fix the box coordinates"
    ),
    19: "box (0, 35, 5, 39) lies entirely outside the 40x30 image; fix the box coordinates",
}


def test_every_bad_row_is_skipped_with_its_line_and_reason(images: Path) -> None:
    csv_path = _csv(images, EVERY_PROBLEM)
    index = load_image_index(csv_path)
    assert [p.row for p in index.skipped] == sorted(EXPECTED)
    for problem in index.skipped:
        assert problem.file == str(csv_path)
        assert problem.reason.startswith(EXPECTED[problem.row or 0]), problem
    assert index.paths == [
        "wide.png",
        "square.png",
        "upright.jpg",
        "rotated.jpg",
        "rotated.jpg",
        "broken.png",
    ]
    assert index.class_names == ["cat", "dog"]  # 'NaN' never became a class
    # Kept boxes crop as promised: partly outside is clamped; the rotated file in its displayed frame.
    assert load_image(index, 1).size == (5, 5)
    assert load_image(index, 4).size == (5, 4)


def test_strict_fails_with_every_problem_and_its_line(images: Path) -> None:
    csv_path = _csv(images, EVERY_PROBLEM)
    skipped = load_image_index(csv_path).skipped
    with pytest.raises(SourceValidationError, match=r"13 problem\(s\) in 19 row\(s\) \(strict=True") as info:
        load_image_index(csv_path, strict=True)
    assert info.value.problems == skipped
    message = str(info.value)
    for line in EXPECTED:
        assert f"{csv_path}:{line}: " in message


def test_each_image_header_is_read_once(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = csv_manifest.box_frames

    def counting(path: Path) -> list[tuple[int, int]] | None:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(csv_manifest, "box_frames", counting)
    load_image_index(_csv(images, EVERY_PROBLEM))
    assert sorted(p.name for p in calls) == [
        "broken.png",
        "rotated.jpg",
        "square.png",
        "upright.jpg",
        "wide.png",
    ]
    calls.clear()
    load_image_index(_csv(images, "path,label\nwide.png,a\nsquare.png,b\n"))
    assert calls == []  # without boxes no image is opened


def test_missing_labels_in_multilabel_and_duplicates_without_boxes(images: Path) -> None:
    text = (
        "path,labels\n"
        "wide.png,cat|dog\n"  # 2
        "square.png,cat|nan\n"  # 3 a NaN among the labels
        "wide.png,dog|cat\n"  # 4 the same labels in another order: a duplicate
        "upright.jpg,\n"  # 5 no labels: a negative in every class, kept
        "upright.jpg,\n"  # 6 duplicate without labels
    )
    index = load_image_index(_csv(images, text))
    assert index.paths == ["wide.png", "upright.jpg"]
    assert [(p.row, p.reason) for p in index.skipped] == [
        (
            3,
            "labels 'cat|nan' in column 'labels' hold a missing value (NaN), not a class; leave the cell "
            "empty for no labels",
        ),
        (4, "duplicate of line 2 (same path and label); line 4 is skipped"),
        (6, "duplicate of line 5 (same path); line 6 is skipped"),
    ]
    assert index.class_names == ["cat", "dog"]
