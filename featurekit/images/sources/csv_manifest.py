"""`csv` source: a manifest with one row per image (or per box of an image)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from featurekit.errors import InvalidInputError, PathNotFoundError, SourceValidationError
from featurekit.images.index import ImageIndex, SourceProblem
from featurekit.images.options import SourceOptions
from featurekit.images.sources._columns import BINARY_VALUES, CsvLayout, resolve_layout
from featurekit.images.sources._files import require_file
from featurekit.images.sources._paths import missing_file_reasons, missing_files
from featurekit.images.sources._problems import settle_problems
from featurekit.images.sources._sizes import Frame, box_frames, outside_every_frame
from featurekit.images.sources.registry import IMAGE_SOURCES

Row = tuple[int, list[str]]  # (1-based line number where the record starts, fields)

# Label cells that are a missing value written out as text (pandas/numpy write NaN as "nan"),
# never a class. "none"/"null"/"NA" are left alone: they are real class names in some datasets.
MISSING_LABELS = frozenset({"nan"})


@dataclass
class _Parsed:
    """One CSV row after parsing; `reasons` non-empty means the row is dropped."""

    line: int
    path: str
    label: str | list[str] | None = None  # single label | multi-label names | one-hot flags "0"/"1"
    box: tuple[float, float, float, float] | None = None
    split: str | None = None
    group: str | None = None
    reasons: list[str] | None = None


def read_csv(path: Path) -> tuple[list[str], list[Row]]:
    """Header (stripped names) and non-blank rows with the line number each record starts on."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a BOM
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows: list[Row] = []
            previous = reader.line_num
            for fields in reader:
                start, previous = previous + 1, reader.line_num
                if fields:  # csv yields [] for a blank line
                    rows.append((start, fields))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not a UTF-8 text file ({exc}); save the CSV as UTF-8") from exc
    except csv.Error as exc:
        raise InvalidInputError(f"{path}: malformed CSV near line {reader.line_num} ({exc})") from exc
    if not header or not any(header):
        raise SourceValidationError(f"{path}: the CSV is empty; it needs a header line, e.g. 'path,label'")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise SourceValidationError(
            f"{path}: column name(s) {duplicated} appear more than once in the header"
        )
    return header, rows


def _parse_box(
    fields: list[str], cols: tuple[int, int, int, int], names: tuple[str, ...]
) -> tuple[float, float, float, float] | str:
    """The box, or the reason it is unusable."""
    values: list[float] = []
    for col, name in zip(cols, names, strict=True):
        raw = fields[col].strip()
        try:
            value = float(raw)
        except ValueError:
            return f"box column {name!r} holds {raw!r}, not a number"
        if not math.isfinite(value):
            return f"box column {name!r} holds {raw!r}; box coordinates must be finite numbers"
        values.append(value)
    x1, y1, x2, y2 = values
    if min(values) < 0:
        return f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has a negative coordinate; pixel coordinates start at 0"
    shown = f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g})"
    corners = "columns must be x1 < x2 and y1 < y2 (corners, not x, y, width, height)"
    if x2 < x1 or y2 < y1:
        which = "x2 < x1" if x2 < x1 else "y2 < y1"
        return f"{shown} is inverted ({which}); {corners}"
    if x2 == x1 or y2 == y1:
        which = "x1 == x2" if x2 == x1 else "y1 == y2"
        return f"{shown} has zero area ({which}); {corners}"
    return (x1, y1, x2, y2)


def _parse_row(line: int, fields: list[str], header: list[str], layout: CsvLayout, sep: str) -> _Parsed:
    reasons: list[str] = []
    if len(fields) < len(header) or any(f.strip() for f in fields[len(header) :]):
        # Trailing empty fields (a stray comma) are harmless; anything else means misaligned columns.
        return _Parsed(
            line,
            "",
            reasons=[
                f"has {len(fields)} fields but the header has {len(header)}; quote values that contain commas"
            ],
        )
    raw_path = fields[layout.path].strip()
    path = PurePosixPath(raw_path).as_posix() if raw_path else ""
    if not path:
        reasons.append(f"empty path in column {header[layout.path]!r}")
    parsed = _Parsed(line, path, reasons=reasons)
    if layout.boxes is not None:
        box = _parse_box(fields, layout.boxes, tuple(header[c] for c in layout.boxes))
        if isinstance(box, str):
            reasons.append(box)
        else:
            parsed.box = box
    if layout.label_mode == "single" and layout.label is not None:
        parsed.label = fields[layout.label].strip()
        if parsed.label.lower() in MISSING_LABELS:
            reasons.append(
                f"label {parsed.label!r} in column {header[layout.label]!r} is a missing value (NaN), not a "
                "class; leave the cell empty for an unlabelled row, or give the class name"
            )
    elif layout.label_mode == "multi" and layout.label is not None:
        parsed.label = sorted({n.strip() for n in fields[layout.label].split(sep) if n.strip()})
        if any(n.lower() in MISSING_LABELS for n in parsed.label):
            reasons.append(
                f"labels {fields[layout.label].strip()!r} in column {header[layout.label]!r} hold a "
                "missing value (NaN), not a class; leave the cell empty for no labels"
            )
    elif layout.label_mode == "onehot":
        flags = [fields[c].strip() for c in layout.class_columns]
        bad = [
            f"{header[c]!r}={v!r}"
            for c, v in zip(layout.class_columns, flags, strict=True)
            if v not in BINARY_VALUES
        ]
        if bad:
            reasons.append(f"class columns must hold 0 or 1, got {', '.join(bad[:5])}")
        parsed.label = flags
    if layout.split is not None:
        parsed.split = fields[layout.split].strip()
    if layout.group is not None:
        parsed.group = fields[layout.group].strip()
    return parsed


def _class_sort_key(name: str) -> tuple[int, float, str]:
    # Integer-like class names sort numerically ("2" before "10"); others alphabetically, after them.
    try:
        return (0, float(int(name)), name)
    except ValueError:
        return (1, 0.0, name)


def _build_labels(kept: list[_Parsed], layout: CsvLayout) -> tuple[list[str], np.ndarray | None]:
    if layout.label_mode == "single":
        names = sorted({str(p.label) for p in kept if p.label}, key=_class_sort_key)
        lookup = {n: i for i, n in enumerate(names)}
        # An empty label cell is "no label" (-1), e.g. rows kept for prediction only.
        return names, np.asarray([lookup.get(str(p.label), -1) for p in kept], dtype=np.int64)
    if layout.label_mode == "multi":
        names = sorted({n for p in kept for n in (p.label or [])}, key=_class_sort_key)
        lookup = {n: i for i, n in enumerate(names)}
        hot = np.zeros((len(kept), len(names)), dtype=np.uint8)
        for r, p in enumerate(kept):
            hot[r, [lookup[n] for n in p.label or []]] = 1
        return names, hot
    if layout.label_mode == "onehot":
        hot = np.asarray([[float(v) == 1.0 for v in p.label or []] for p in kept], dtype=np.uint8)
        return list(layout.class_names), hot.reshape(len(kept), len(layout.class_names))
    return [], None


def _image_root(csv_path: Path, image_root: str | None) -> Path:
    if image_root is None:
        return csv_path.parent
    root = csv_path.parent / Path(image_root).expanduser()  # an absolute image_root replaces the parent
    if not root.is_dir():
        raise PathNotFoundError(
            f"image_root {image_root!r} is not a folder (looked for {root}; a relative image_root is "
            f"relative to the CSV's folder {csv_path.parent})"
        )
    return root


def _outside_reason(box: tuple[float, float, float, float], frames: list[Frame] | None) -> str:
    """Why a box lies entirely outside its image ("" when it does not, or the size is unknown)."""
    if frames is None or not outside_every_frame(box, frames):
        return ""
    width, height = frames[0]
    also = " (also when turned by its EXIF orientation)" if len(frames) > 1 else ""
    x1, y1, x2, y2 = box
    return (
        f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies entirely outside the {width}x{height} image{also}; "
        "fix the box coordinates (pixels; a box partly outside is clamped to the image)"
    )


def _duplicate_reason(first: _Parsed, repeat: _Parsed) -> str:
    what = "path and box" if repeat.box is not None else "path"
    if first.label == repeat.label:
        if first.label not in (None, "", []):
            what = "path, box and label" if repeat.box is not None else "path and label"
        return f"duplicate of line {first.line} (same {what}); line {repeat.line} is skipped"
    return (
        f"duplicate of line {first.line} (same {what}) with another label ({_shown(first.label)} on line "
        f"{first.line}, {_shown(repeat.label)} here); line {first.line} is kept, remove one of the two rows"
    )


def _shown(label: str | list[str] | None) -> str:
    return repr(label) if isinstance(label, str) or label is None else repr("|".join(label))


@IMAGE_SOURCES.register("csv")
def csv_source(path: Path, options: SourceOptions) -> ImageIndex:
    """Rows of a CSV manifest; bad rows are skipped (or raise with strict=True), files are not opened."""
    require_file(path, "csv", ".csv")
    root = _image_root(path, options.image_root)
    header, rows = read_csv(path)
    layout = resolve_layout(path, header, rows, options)
    parsed = [_parse_row(line, fields, header, layout, options.label_sep) for line, fields in rows]

    missing = missing_files(root, (p.path for p in parsed if p.path))
    missing_reasons = missing_file_reasons(root, missing, base_dir=path.parent)
    first_seen: dict[tuple[str, tuple[float, float, float, float] | None], _Parsed] = {}
    frames: dict[str, list[Frame] | None] = {}
    problems: list[SourceProblem] = []
    kept: list[_Parsed] = []
    for p in parsed:
        reasons = list(p.reasons or [])
        if p.path in missing_reasons:
            reasons.append(missing_reasons[p.path])
        if not reasons and p.box is not None:
            if p.path not in frames:
                frames[p.path] = box_frames(root / p.path)  # reads the header only
            outside = _outside_reason(p.box, frames[p.path])
            if outside:
                reasons.append(outside)
        if not reasons:
            key = (p.path, p.box)
            if key in first_seen:
                reasons.append(_duplicate_reason(first_seen[key], p))
            else:
                first_seen[key] = p
        if reasons:
            problems.append(SourceProblem(file=str(path), row=p.line, reason="; ".join(reasons)))
        else:
            kept.append(p)
    settle_problems(problems, where=str(path), n_rows=len(parsed), n_kept=len(kept), strict=options.strict)

    class_names, labels = _build_labels(kept, layout)
    return ImageIndex(
        source="csv",
        root=root,
        paths=[p.path for p in kept],
        class_names=class_names,
        labels=labels,
        boxes=None
        if layout.boxes is None
        else np.asarray([p.box for p in kept], dtype=np.float64).reshape(-1, 4),
        groups=None if layout.group is None else np.asarray([p.group for p in kept], dtype=str),
        splits=None if layout.split is None else np.asarray([p.split for p in kept], dtype=str),
        skipped=problems,
    )
