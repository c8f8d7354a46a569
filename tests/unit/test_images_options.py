"""SourceOptions, load_image_index's dispatch: auto-detection, overrides, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.errors import InvalidInputError, PathNotFoundError, SourceValidationError, UnknownNameError
from featurekit.images import IMAGE_SOURCES, SourceOptions, detect_source, load_image_index


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def test_registry_holds_the_builtin_sources() -> None:
    assert IMAGE_SOURCES.names() == ["csv", "folder", "npz", "unlabelled"]


def test_options_defaults_and_list_coercion() -> None:
    options = SourceOptions(class_columns=["a", "b"], box_columns=["l", "t", "r", "b"])  # type: ignore[arg-type]
    assert options.class_columns == ("a", "b")
    assert options.box_columns == ("l", "t", "r", "b")
    assert SourceOptions().box_columns == ("x1", "y1", "x2", "y2")
    assert SourceOptions().split_column == "split" and SourceOptions().strict is False
    hash(options)  # frozen and hashable, so it can key a cache


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box_columns": ("a", "b")}, r"box_columns must name 4 columns"),
        ({"label_sep": ""}, r"label_sep must be a non-empty string"),
        ({"class_columns": "dog"}, r"class_columns must be a sequence of names, got the string 'dog'"),
        ({"class_columns": ()}, r"class_columns is empty"),
        (
            {"label_column": "a", "class_columns": ("b",)},
            r"give only one of .*\['label_column', 'class_columns'\]",
        ),
    ],
)
def test_invalid_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SourceOptions(**kwargs)  # type: ignore[arg-type]


def test_auto_detection(tmp_path: Path) -> None:
    _image(tmp_path / "classes" / "a" / "1.png")
    _image(tmp_path / "classes" / "b" / "sub" / "2.png")
    _image(tmp_path / "flat" / "1.png")
    (tmp_path / "flat" / "empty_sub").mkdir()
    _image(tmp_path / "mixed" / "1.png")
    _image(tmp_path / "mixed" / "a" / "2.png")
    csv_path = tmp_path / "flat" / "LIST.CSV"
    csv_path.write_text("path\n1.png\n")
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 3, 3), np.uint8))

    assert detect_source(tmp_path / "classes") == "folder"
    assert detect_source(tmp_path / "flat") == "unlabelled"
    assert detect_source(csv_path) == "csv"
    assert detect_source(tmp_path / "x.npz") == "npz"
    assert load_image_index(tmp_path / "classes").class_names == ["a", "b"]
    assert load_image_index(tmp_path / "flat").paths == ["1.png"]
    assert load_image_index(csv_path).source == "csv"
    assert load_image_index(str(tmp_path / "x.npz")).paths == ["x.npz:0", "x.npz:1"]
    with pytest.raises(SourceValidationError, match=r"cannot tell the layout: 1 image\(s\) directly inside"):
        load_image_index(tmp_path / "mixed")
    assert load_image_index(tmp_path / "mixed", source="unlabelled").paths == ["1.png", "a/2.png"]


def test_auto_detection_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceValidationError, match=r"empty: no images found \(extensions \['.bmp'"):
        load_image_index(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match=r"cannot tell the source from the suffix '.txt'"):
        load_image_index(tmp_path / "notes.txt")


def test_missing_path_and_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match=r"nowhere.csv does not exist"):
        load_image_index(tmp_path / "nowhere.csv")
    _image(tmp_path / "a" / "1.png")
    with pytest.raises(UnknownNameError, match=r"unknown image source 'csvv'; did you mean csv"):
        load_image_index(tmp_path, source="csvv")


def test_overrides_apply_on_top_of_options(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "a.png")
    (tmp_path / "m.csv").write_text("where,label\na.png,x\n")
    base = SourceOptions(path_column="where")
    index = load_image_index(tmp_path / "m.csv", base, image_root="imgs")
    assert index.paths == ["a.png"] and index.class_names == ["x"]
    with pytest.raises(
        InvalidInputError, match=r"unknown source option\(s\) \['imageroot'\]; allowed: \['source'"
    ):
        load_image_index(tmp_path / "m.csv", imageroot="imgs")


def test_importing_images_does_not_import_torch() -> None:
    code = "import sys, featurekit.images; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
