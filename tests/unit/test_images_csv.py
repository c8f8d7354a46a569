"""The `csv` source: label modes, boxes, splits/groups, and every validation problem with its line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from featurekit.errors import InvalidInputError, PathNotFoundError, SourceValidationError
from featurekit.images import SourceProblem, load_image_index


def _image(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def three_images(tmp_path: Path) -> Path:
    for name in ("a.png", "b.png", "c.png"):
        _image(tmp_path / name)
    return tmp_path


def test_single_label_sorted_classes_and_empty_label(three_images: Path) -> None:
    csv_path = _csv(three_images, "path,label\na.png,dog\nb.png,cat\nc.png,\n")
    index = load_image_index(csv_path)
    assert index.source == "csv"
    assert index.root == three_images
    assert index.paths == ["a.png", "b.png", "c.png"]
    assert index.class_names == ["cat", "dog"]
    assert index.labels is not None and index.labels.dtype == np.int64
    assert index.labels.tolist() == [1, 0, -1]  # an empty label cell is "no label"
    assert not index.multilabel and index.boxes is None and index.splits is None and index.groups is None


def test_integer_class_names_sort_numerically(three_images: Path) -> None:
    csv_path = _csv(three_images, "file,label\na.png,10\nb.png,2\nc.png,2\n")
    index = load_image_index(csv_path)
    assert index.class_names == ["2", "10"]
    assert index.labels is not None and index.labels.tolist() == [1, 0, 0]


def test_multilabel_column_split_on_separator(three_images: Path) -> None:
    csv_path = _csv(three_images, "path,labels\na.png,zebra|ant\nb.png,\nc.png, ant \n")
    index = load_image_index(csv_path)
    assert index.multilabel
    assert index.class_names == ["ant", "zebra"]
    assert index.labels is not None and index.labels.dtype == np.uint8
    assert index.labels.tolist() == [[1, 1], [0, 0], [1, 0]]


def test_multilabel_custom_separator_and_explicit_column(three_images: Path) -> None:
    csv_path = _csv(three_images, "path,tags\na.png,x;y\nb.png,y\nc.png,x\n")
    index = load_image_index(csv_path, labels_column="tags", label_sep=";")
    assert index.class_names == ["x", "y"]
    assert index.labels is not None and index.labels.tolist() == [[1, 1], [0, 1], [1, 0]]


def test_class_columns_auto_detected_in_column_order(three_images: Path) -> None:
    csv_path = _csv(three_images, "path,split,dog,cat\na.png,train,1,0\nb.png,val,1,1\nc.png,train,0,0\n")
    index = load_image_index(csv_path)
    assert index.class_names == ["dog", "cat"]  # column order, not sorted
    assert index.labels is not None and index.labels.tolist() == [[1, 0], [1, 1], [0, 0]]
    assert index.splits is not None and index.splits.tolist() == ["train", "val", "train"]


def test_non_binary_extra_columns_are_not_guessed_as_classes(
    three_images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    csv_path = _csv(three_images, "path,dog,cat\na.png,1,0\nb.png,2,1\nc.png,0,0\n")
    with caplog.at_level(logging.WARNING):
        index = load_image_index(csv_path)
    assert index.labels is None and index.class_names == []
    assert "columns ['dog', 'cat'] are not used" in caplog.text


def test_explicit_class_columns_reject_values_other_than_0_1(three_images: Path) -> None:
    csv_path = _csv(three_images, "path,dog,cat\na.png,1,0\nb.png,2,1\nc.png,0,yes\n")
    index = load_image_index(csv_path, class_columns=["dog", "cat"])
    assert index.paths == ["a.png"]
    assert [(p.row, p.reason) for p in index.skipped] == [
        (3, "class columns must hold 0 or 1, got 'dog'='2'"),
        (4, "class columns must hold 0 or 1, got 'cat'='yes'"),
    ]


def test_boxes_splits_groups_one_row_per_box(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "p.png", (40, 30))
    _image(tmp_path / "img" / "q.png", (40, 30))
    text = (
        "image_id,x1,y1,x2,y2,label,split,group\n"
        "p.png,1,2,11,12,wbc,train,donor1\n"
        "p.png,20,5,30.5,25,rbc,train,donor1\n"
        "q.png,0,0,40,30,rbc,test,donor2\n"
    )
    index = load_image_index(_csv(tmp_path, text), image_root="img")
    assert index.root == tmp_path / "img"
    assert index.paths == ["p.png", "p.png", "q.png"]
    assert index.boxes is not None and index.boxes.dtype == np.float64
    np.testing.assert_array_equal(index.boxes, [[1, 2, 11, 12], [20, 5, 30.5, 25], [0, 0, 40, 30]])
    assert index.class_names == ["rbc", "wbc"]
    assert index.labels is not None and index.labels.tolist() == [1, 0, 0]
    assert index.splits is not None and index.splits.tolist() == ["train", "train", "test"]
    assert index.groups is not None and index.groups.tolist() == ["donor1", "donor1", "donor2"]
    assert index.box(1) == (20.0, 5.0, 30.5, 25.0)


def test_every_validation_problem_reported_with_its_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _image(tmp_path / "ok.png")
    _image(tmp_path / "ok2.png")
    text = (
        "path,x1,y1,x2,y2,label\n"  # line 1
        "ok.png,1,1,5,5,a\n"  # 2: good
        "gone.png,1,1,5,5,a\n"  # 3: missing file
        ",1,1,5,5,a\n"  # 4: empty path
        "ok.png,one,1,5,5,a\n"  # 5: non-numeric
        "ok.png,1,nan,5,5,a\n"  # 6: NaN
        "ok.png,-1,1,5,5,a\n"  # 7: negative
        "ok.png,5,1,5,5,a\n"  # 8: x2 <= x1 (zero width)
        "ok.png,1,4,5,2,b\n"  # 9: y2 < y1
        "ok.png,1,1,5,5,b\n"  # 10: duplicate of line 2 (same path and box)
        "ok.png,1,1\n"  # 11: too few fields
        "ok2.png,1,1,5,5,b\n"  # 12: good
    )
    csv_path = _csv(tmp_path, text)
    with caplog.at_level(logging.WARNING):
        index = load_image_index(csv_path)
    assert index.paths == ["ok.png", "ok2.png"]
    assert index.labels is not None and index.labels.tolist() == [0, 1]
    expected = {
        3: "file not found: " + str(tmp_path / "gone.png"),
        4: "empty path in column 'path'",
        5: "box column 'x1' holds 'one', not a number",
        6: "box column 'y1' holds 'nan'; box coordinates must be finite numbers",
        7: "box (-1, 1, 5, 5) has a negative coordinate",
        8: "box (5, 1, 5, 5) has zero area (x1 == x2)",
        9: "box (1, 4, 5, 2) is inverted (y2 < y1)",
        10: "duplicate of line 2 (same path and box) with another label ('a' on line 2, 'b' here)",
        11: "has 3 fields but the header has 6",
    }
    assert [p.row for p in index.skipped] == list(expected)
    for problem in index.skipped:
        assert problem.file == str(csv_path)
        assert problem.reason.startswith(expected[problem.row or 0]), problem
    assert "skipped 9 of 11 row(s)" in caplog.text
    assert "and 1 more" in caplog.text  # the log is a summary, not every row

    with pytest.raises(SourceValidationError, match=r"9 problem\(s\) in 11 row\(s\) \(strict=True") as info:
        load_image_index(csv_path, strict=True)
    assert info.value.problems == index.skipped  # strict lists exactly the rows the default skips
    assert f"{csv_path}:3: file not found" in str(info.value)


def test_duplicate_path_without_boxes_and_row_numbers_after_multiline_field(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    text = 'path,label\na.png,"two\nlines"\nb.png,x\na.png,y\n'  # records start on lines 2, 4, 5
    index = load_image_index(_csv(tmp_path, text))
    assert index.paths == ["a.png", "b.png"]
    assert [(p.row, p.reason) for p in index.skipped] == [
        (
            5,
            "duplicate of line 2 (same path) with another label ('two\\nlines' on line 2, 'y' here); "
            "line 2 is kept, remove one of the two rows",
        )
    ]


def test_missing_file_hint_points_at_the_subfolder_holding_it(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "a.png")
    csv_path = _csv(tmp_path, "path,label\na.png,x\n")
    with pytest.raises(SourceValidationError, match=r"no usable images") as info:
        load_image_index(csv_path)
    problem = info.value.problems[0]
    assert isinstance(problem, SourceProblem) and problem.row == 2
    assert f"it exists under {tmp_path / 'images'}/, pass image_root='images' (--image-root images)" in (
        problem.reason
    )
    assert load_image_index(csv_path, image_root="images").paths == ["a.png"]


def test_missing_file_generic_hint(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    csv_path = _csv(tmp_path, "path\na.png\nnowhere.png\n")
    index = load_image_index(csv_path)
    assert index.paths == ["a.png"] and index.labels is None
    assert index.skipped[0].reason == (
        f"file not found: {tmp_path / 'nowhere.png'}; paths are read relative to {tmp_path}; "
        "pass image_root=... (--image-root) if the images live elsewhere"
    )


def test_absolute_image_root_and_utf8_bom(tmp_path: Path) -> None:
    _image(tmp_path / "elsewhere" / "a.png")
    csv_path = tmp_path / "sub" / "m.csv"
    csv_path.parent.mkdir()
    csv_path.write_text("\ufeffpath,label\na.png,x\n", encoding="utf-8")
    index = load_image_index(csv_path, image_root=str(tmp_path / "elsewhere"))
    assert index.root == tmp_path / "elsewhere" and index.paths == ["a.png"]
    with pytest.raises(
        PathNotFoundError, match=r"image_root 'nope' is not a folder.*relative to the CSV's folder"
    ):
        load_image_index(csv_path, image_root="nope")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            {"label_column": "species"},
            r"label column 'species' not found; the CSV has columns \['path', 'label'\]",
        ),
        ({"labels_column": "tags"}, r"labels column 'tags' not found"),
        ({"path_column": "where"}, r"path column 'where' not found"),
        ({"class_columns": ("label", "cat")}, r"class column 'cat' not found"),
        ({"split_column": "fold"}, r"split column 'fold' not found.*pass split_column=None"),
        ({"group_column": "patient"}, r"group column 'patient' not found"),
        (
            {"box_columns": ("a", "b", "c", "d")},
            r"box columns \['a', 'b', 'c', 'd'\] are only partly present",
        ),
    ],
)
def test_explicit_columns_that_do_not_exist(three_images: Path, option: dict[str, Any], message: str) -> None:
    csv_path = _csv(three_images, "path,label\na.png,x\n")
    with pytest.raises(SourceValidationError, match=message) as info:
        load_image_index(csv_path, **option)
    assert str(csv_path) in str(info.value)


def test_structural_problems_always_raise(three_images: Path) -> None:
    with pytest.raises(SourceValidationError, match=r"no path column; expected one of \['path', 'file'"):
        load_image_index(_csv(three_images, "picture,label\na.png,x\n", "a.csv"))
    with pytest.raises(
        SourceValidationError, match=r"box columns .* only partly present \(missing \['y2'\]\)"
    ):
        load_image_index(_csv(three_images, "path,x1,y1,x2\na.png,1,1,2\n", "b.csv"))
    with pytest.raises(SourceValidationError, match=r"the CSV is empty"):
        load_image_index(_csv(three_images, "", "c.csv"))
    with pytest.raises(SourceValidationError, match=r"column name\(s\) \['label'\] appear more than once"):
        load_image_index(_csv(three_images, "path,label,label\na.png,x,y\n", "d.csv"))
    with pytest.raises(
        InvalidInputError, match=r"give only one of label_column, labels_column, class_columns"
    ):
        load_image_index(
            _csv(three_images, "path,label\na.png,x\n", "e.csv"), label_column="label", labels_column="x"
        )


def test_all_rows_bad_is_an_empty_dataset(three_images: Path) -> None:
    csv_path = _csv(three_images, "path,label\nx.png,a\ny.png,b\n")
    with pytest.raises(
        SourceValidationError, match=r"no usable images \(2 row\(s\) found, 2 with problems\)"
    ):
        load_image_index(csv_path)
    with pytest.raises(SourceValidationError, match=r"no usable images \(0 row\(s\) found"):
        load_image_index(_csv(three_images, "path,label\n", "header_only.csv"))


def test_trailing_empty_fields_are_harmless(three_images: Path) -> None:
    index = load_image_index(_csv(three_images, "path,label\na.png,x,\nb.png,y,,\nc.png,z,extra\n"))
    assert index.paths == ["a.png", "b.png"]
    assert [(p.row, p.reason) for p in index.skipped] == [
        (4, "has 3 fields but the header has 2; quote values that contain commas")
    ]
