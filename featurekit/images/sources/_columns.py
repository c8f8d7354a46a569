"""Which CSV column plays which role: explicit options first, then auto-detection."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from featurekit.errors import SourceValidationError
from featurekit.images.options import (
    DEFAULT_BOX_COLUMNS,
    DEFAULT_GROUP_COLUMN,
    DEFAULT_SPLIT_COLUMN,
    PATH_COLUMN_CANDIDATES,
    SourceOptions,
)

logger = logging.getLogger(__name__)

BINARY_VALUES = frozenset({"0", "1", "0.0", "1.0"})


@dataclass(frozen=True)
class CsvLayout:
    """Column indices for each role; `label_mode` is "single", "multi", "onehot" or None."""

    path: int
    label_mode: str | None = None
    label: int | None = None  # the single- or multi-label column
    class_columns: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    split: int | None = None
    group: int | None = None
    boxes: tuple[int, int, int, int] | None = None


def _missing(
    csv_path: Path, header: Sequence[str], what: str, name: str, hint: str = ""
) -> SourceValidationError:
    return SourceValidationError(
        f"{csv_path}: {what} column {name!r} not found; the CSV has columns {list(header)}{hint}"
    )


def _optional(csv_path: Path, header: Sequence[str], what: str, name: str | None, default: str) -> int | None:
    # Present -> used. Absent under the default name -> simply not used; under a name the user chose -> error.
    if name is None:
        return None
    if name in header:
        return header.index(name)
    if name != default:
        raise _missing(csv_path, header, what, name, f"; pass {what}_column=None to go without")
    return None


def _boxes(
    csv_path: Path, header: Sequence[str], names: tuple[str, ...] | None
) -> tuple[int, int, int, int] | None:
    if names is None:
        return None
    present = [n for n in names if n in header]
    if not present and names == DEFAULT_BOX_COLUMNS:
        return None
    absent = [n for n in names if n not in header]
    if absent:
        raise SourceValidationError(
            f"{csv_path}: box columns {list(names)} are only partly present (missing {absent}); "
            f"the CSV has columns {list(header)}; pass box_columns=(x1, y1, x2, y2) names, or None for no "
            "boxes"
        )
    i1, i2, i3, i4 = (header.index(n) for n in names)
    return (i1, i2, i3, i4)


def is_binary_column(rows: Sequence[tuple[int, list[str]]], col: int) -> bool:
    return all(fields[col].strip() in BINARY_VALUES for _, fields in rows if col < len(fields))


def resolve_layout(
    csv_path: Path, header: Sequence[str], rows: Sequence[tuple[int, list[str]]], options: SourceOptions
) -> CsvLayout:
    """Map roles to columns; raises SourceValidationError for unknown explicit columns (structural)."""
    if options.path_column is not None:
        if options.path_column not in header:
            raise _missing(csv_path, header, "path", options.path_column)
        path = header.index(options.path_column)
    else:
        found = [c for c in PATH_COLUMN_CANDIDATES if c in header]
        if not found:
            raise SourceValidationError(
                f"{csv_path}: no path column; expected one of {list(PATH_COLUMN_CANDIDATES)}, "
                f"the CSV has columns {list(header)}; pass path_column=... (--path-column)"
            )
        path = header.index(found[0])
    split = _optional(csv_path, header, "split", options.split_column, DEFAULT_SPLIT_COLUMN)
    group = _optional(csv_path, header, "group", options.group_column, DEFAULT_GROUP_COLUMN)
    boxes = _boxes(csv_path, header, options.box_columns)
    base = CsvLayout(path=path, split=split, group=group, boxes=boxes)

    if options.label_column is not None:
        if options.label_column not in header:
            raise _missing(csv_path, header, "label", options.label_column)
        return replace(base, label_mode="single", label=header.index(options.label_column))
    if options.labels_column is not None:
        if options.labels_column not in header:
            raise _missing(csv_path, header, "labels", options.labels_column)
        return replace(base, label_mode="multi", label=header.index(options.labels_column))
    if options.class_columns is not None:
        absent = [c for c in options.class_columns if c not in header]
        if absent:
            raise _missing(csv_path, header, "class", absent[0], f" (all missing class columns: {absent})")
        cols = tuple(header.index(c) for c in options.class_columns)
        return replace(base, label_mode="onehot", class_columns=cols, class_names=options.class_columns)

    used = {path, split, group, *(boxes or ())}
    if "label" in header and header.index("label") not in used:
        return replace(base, label_mode="single", label=header.index("label"))
    if "labels" in header and header.index("labels") not in used:
        return replace(base, label_mode="multi", label=header.index("labels"))
    rest = [i for i in range(len(header)) if i not in used]
    # A single 0/1 column is more likely a binary label than a one-class multi-label task: not guessed.
    if len(rest) >= 2 and all(is_binary_column(rows, i) for i in rest):
        return replace(
            base, label_mode="onehot", class_columns=tuple(rest), class_names=tuple(header[i] for i in rest)
        )
    if rest:
        logger.warning(
            "%s: no label column found, rows are unlabelled; columns %s are not used (pass label_column=, "
            "labels_column= or class_columns= to use them)",
            csv_path,
            [header[i] for i in rest],
        )
    return base
