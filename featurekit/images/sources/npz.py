"""`npz` source: pixels in one array (N, H, W) or (N, H, W, C) uint8, labels/groups/splits beside it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from featurekit.errors import InvalidInputError, SourceValidationError
from featurekit.images.index import ImageIndex, SourceProblem
from featurekit.images.options import SourceOptions
from featurekit.images.sources._files import require_file
from featurekit.images.sources._problems import settle_problems
from featurekit.images.sources.registry import IMAGE_SOURCES

# Keys tried, in order, when the matching npz_*_key option is None.
AUTO_KEYS = {"label": ("label", "labels"), "group": ("group", "groups"), "split": ("split", "splits")}


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    # np.load would try to unpickle anything that is not a zip/.npy; refuse before it gets the chance.
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(
            f"{path}: not a readable .npz file (not a zip archive; write it with np.savez)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:  # object arrays need pickle, which would run arbitrary code
        raise SourceValidationError(
            f"{path}: holds object arrays ({exc}); store plain numeric/str arrays"
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npz file ({exc})") from exc


def _column(
    path: Path, arrays: dict[str, np.ndarray], what: str, key: str | None, n: int
) -> np.ndarray | None:
    if key is None:
        key = next((k for k in AUTO_KEYS[what] if k in arrays), None)
        if key is None:
            return None
    elif key not in arrays:
        raise SourceValidationError(
            f"{path}: no array {key!r} (npz_{what}_key); the file holds {sorted(arrays)}"
        )
    values = arrays[key]
    if values.shape[:1] != (n,) or (values.ndim != 1 and not (what == "label" and values.ndim == 2)):
        raise SourceValidationError(
            f"{path}: array {key!r} has shape {values.shape}; expected ({n},), one value per image"
        )
    return values


def _images(path: Path, arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in arrays:
        raise SourceValidationError(
            f"{path}: no images array {key!r}; the file holds {sorted(arrays)}; pass npz_images_key=..."
        )
    images = arrays[key]
    if images.dtype != np.uint8:
        raise SourceValidationError(
            f"{path}: images array {key!r} has dtype {images.dtype}; expected uint8 pixels 0-255 "
            "(convert with (x * 255).round().astype(np.uint8) if they are floats in 0-1)"
        )
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] in (1, 3, 4))):
        raise SourceValidationError(
            f"{path}: images array {key!r} has shape {images.shape}; expected (N, H, W) or (N, H, W, C) "
            "with C in 1, 3, 4 (channels last)"
        )
    return images


def _labels(
    path: Path, raw: np.ndarray, class_names: tuple[str, ...] | None
) -> tuple[list[str], np.ndarray, list[SourceProblem]]:
    """Class names, labels (int64 indices, or uint8 multi-hot for a 2-D array) and bad rows."""
    problems: list[SourceProblem] = []
    if raw.ndim == 2:  # (N, C) multi-hot
        bad_rows = np.flatnonzero(~np.isin(raw, (0, 1)).all(axis=1))
        problems = [SourceProblem(str(path), int(i), "multi-hot labels must be 0 or 1") for i in bad_rows]
        names = list(class_names) if class_names else [str(i) for i in range(raw.shape[1])]
        if len(names) != raw.shape[1]:
            raise InvalidInputError(f"{path}: {len(names)} npz_class_names for {raw.shape[1]} label columns")
        return names, (raw == 1).astype(np.uint8), problems
    if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
        raw = raw.astype(np.int64)  # labels saved as floats 0.0, 1.0, ...
    if raw.dtype.kind in "iub":
        ints = raw.astype(np.int64)
        if class_names is not None:
            # Integers index the given class names.
            names = list(class_names)
            labels = ints
            out = np.flatnonzero((ints < 0) | (ints >= len(names)))
            problems = [
                SourceProblem(
                    str(path),
                    int(i),
                    f"label {ints[i]} is outside 0..{len(names) - 1} ({len(names)} npz_class_names)",
                )
                for i in out
            ]
        else:
            values = np.unique(ints)
            names = [str(v) for v in values]
            labels = np.searchsorted(values, ints).astype(np.int64)
        return names, labels, problems
    if raw.dtype.kind == "U":
        strings = [s.strip() for s in raw.tolist()]
        names = list(class_names) if class_names is not None else sorted(set(strings))
        lookup = {n: i for i, n in enumerate(names)}
        problems = [
            SourceProblem(str(path), i, f"label {s!r} is not one of npz_class_names {names[:10]}")
            for i, s in enumerate(strings)
            if s not in lookup
        ]
        return names, np.asarray([lookup.get(s, -1) for s in strings], dtype=np.int64), problems
    raise SourceValidationError(
        f"{path}: labels of dtype {raw.dtype} are not supported; use integers or strings"
    )


@IMAGE_SOURCES.register("npz")
def npz_source(path: Path, options: SourceOptions) -> ImageIndex:
    """Rows are "<file>.npz:<i>"; `index.array` holds the pixels of every image (rows share it)."""
    require_file(path, "npz", ".npz")
    arrays = _load_arrays(path)
    images = _images(path, arrays, options.npz_images_key)
    n = len(images)
    if options.npz_class_names is not None and len(set(options.npz_class_names)) != len(
        options.npz_class_names
    ):
        raise InvalidInputError(f"npz_class_names has repeated names: {list(options.npz_class_names)}")
    raw_labels = _column(path, arrays, "label", options.npz_label_key, n)
    groups = _column(path, arrays, "group", options.npz_group_key, n)
    splits = _column(path, arrays, "split", options.npz_split_key, n)

    class_names: list[str] = []
    labels: np.ndarray | None = None
    problems: list[SourceProblem] = []
    if raw_labels is not None:
        class_names, labels, problems = _labels(path, raw_labels, options.npz_class_names)
    keep = np.ones(n, dtype=bool)
    keep[[p.row for p in problems if p.row is not None]] = False
    settle_problems(problems, where=str(path), n_rows=n, n_kept=int(keep.sum()), strict=options.strict)

    rows = np.flatnonzero(keep)
    return ImageIndex(
        source="npz",
        root=path.parent,
        paths=[f"{path.name}:{i}" for i in rows],
        class_names=class_names,
        labels=None if labels is None else labels[rows],
        groups=None if groups is None else groups[rows].astype(str),
        splits=None if splits is None else splits[rows].astype(str),
        array=images,  # shared, not subset: paths keep the original row numbers
        skipped=problems,
    )
