"""How an image source is read: one frozen dataclass, shared by every source."""

from __future__ import annotations

from dataclasses import dataclass, fields

from featurekit.errors import InvalidInputError

PATH_COLUMN_CANDIDATES = ("path", "file", "filename", "image", "image_id", "image_path")
DEFAULT_SPLIT_COLUMN = "split"
DEFAULT_GROUP_COLUMN = "group"
DEFAULT_BOX_COLUMNS = ("x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class SourceOptions:
    """Options for `load_image_index`; None means "auto-detect" unless said otherwise.

    CSV: `path_column` is auto-detected among PATH_COLUMN_CANDIDATES; labels come from
    `label_column` (single-label), `labels_column` (multi-label, split on `label_sep`) or
    `class_columns` (one 0/1 column per class). `split_column`, `group_column` and
    `box_columns` are optional: used when present, ignored when absent at their default
    names, an error when absent at a name the user chose; None turns them off.
    `image_root` defaults to the CSV's folder; a relative value is relative to that folder.
    NPZ: `npz_*_key` name the arrays; None auto-detects "label(s)", "group(s)", "split(s)".
    `strict`: raise on any bad row instead of skipping it (skipped rows are in `index.skipped`).
    """

    source: str = "auto"
    path_column: str | None = None
    label_column: str | None = None
    labels_column: str | None = None
    label_sep: str = "|"
    class_columns: tuple[str, ...] | None = None
    split_column: str | None = DEFAULT_SPLIT_COLUMN
    group_column: str | None = DEFAULT_GROUP_COLUMN
    box_columns: tuple[str, str, str, str] | None = DEFAULT_BOX_COLUMNS
    image_root: str | None = None
    npz_images_key: str = "images"
    npz_label_key: str | None = None
    npz_group_key: str | None = None
    npz_split_key: str | None = None
    npz_class_names: tuple[str, ...] | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        # Lists arrive from JSON/YAML configs and CLI parsing; store tuples so the options stay hashable.
        for name in ("class_columns", "box_columns", "npz_class_names"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, str):
                    raise InvalidInputError(f"{name} must be a sequence of names, got the string {value!r}")
                object.__setattr__(self, name, tuple(value))
        if self.box_columns is not None and len(self.box_columns) != 4:
            raise InvalidInputError(
                f"box_columns must name 4 columns (x1, y1, x2, y2), got {list(self.box_columns)}"
            )
        if not self.label_sep:
            raise InvalidInputError("label_sep must be a non-empty string, e.g. '|'")
        explicit = [n for n in ("label_column", "labels_column", "class_columns") if getattr(self, n)]
        if len(explicit) > 1:
            raise InvalidInputError(
                f"give only one of label_column, labels_column, class_columns; got {explicit}"
            )
        if self.class_columns is not None and len(self.class_columns) == 0:
            raise InvalidInputError("class_columns is empty; name one 0/1 column per class or leave it unset")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
