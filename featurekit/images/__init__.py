"""Image sources -> ImageIndex, safe decoding with box crops, and content hashes. Never imports torch."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from featurekit.errors import InvalidInputError, PathNotFoundError, SourceValidationError
from featurekit.images.decode import load_image, open_image_file
from featurekit.images.failures import BadImageError
from featurekit.images.hashing import (
    ContentHashes,
    HashedFiles,
    content_hashes,
    hash_contents,
    hash_share,
    rows_from_files,
)
from featurekit.images.index import ImageIndex, SourceProblem
from featurekit.images.options import SourceOptions
from featurekit.images.sources import IMAGE_EXTENSIONS, IMAGE_SOURCES
from featurekit.images.sources._files import contains_image, top_level_images, visible_subfolders

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_SOURCES",
    "BadImageError",
    "ContentHashes",
    "HashedFiles",
    "ImageIndex",
    "SourceOptions",
    "SourceProblem",
    "content_hashes",
    "detect_source",
    "hash_contents",
    "hash_share",
    "load_image",
    "load_image_index",
    "open_image_file",
    "rows_from_files",
]

logger = logging.getLogger(__name__)

_SUFFIX_SOURCES = {".csv": "csv", ".npz": "npz"}


def detect_source(path: Path) -> str:
    """The source name "auto" resolves to for `path` (which must exist)."""
    if path.is_dir():
        class_folders = [s.name for s in visible_subfolders(path) if contains_image(s)]
        loose = top_level_images(path)
        if class_folders and loose:
            raise SourceValidationError(
                f"{path}: cannot tell the layout: {len(loose)} image(s) directly inside (e.g. {loose[0]!r}) "
                f"and subfolders with images {class_folders[:5]}; pass --source folder (one subfolder per "
                "class; loose images ignored) or --source unlabelled (every image, no classes); in Python, "
                "source=SourceOptions(source=...)"
            )
        if class_folders:
            return "folder"
        if loose:
            return "unlabelled"
        raise SourceValidationError(
            f"{path}: no images found (extensions {sorted(IMAGE_EXTENSIONS)}, hidden files ignored)"
        )
    source = _SUFFIX_SOURCES.get(path.suffix.lower())
    if source is None:
        raise InvalidInputError(
            f"{path}: cannot tell the source from the suffix {path.suffix!r}; expected a folder, "
            f"{', '.join(_SUFFIX_SOURCES)}; or pass --source (Python: SourceOptions(source=...)) "
            f"with one of {IMAGE_SOURCES.names()}"
        )
    return source


def load_image_index(path: str | Path, options: SourceOptions | None = None, **overrides: Any) -> ImageIndex:
    """Read a dataset (folder, CSV, npz, ...) into a validated ImageIndex; no image is decoded.

    `overrides` are SourceOptions fields, applied on top of `options`, e.g.
    `load_image_index("boxes.csv", image_root="images", strict=True)`.
    """
    options = options or SourceOptions()
    unknown = sorted(set(overrides) - set(SourceOptions.field_names()))
    if unknown:
        raise InvalidInputError(f"unknown source option(s) {unknown}; allowed: {SourceOptions.field_names()}")
    if overrides:
        options = dataclasses.replace(options, **overrides)
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise PathNotFoundError(f"{path} does not exist (the dataset folder, .csv or .npz to read)")
    name = detect_source(path) if options.source == "auto" else options.source
    index = IMAGE_SOURCES.get(name)(path, options)
    if len(index) == 0:  # sources raise this themselves; kept for third-party sources
        raise SourceValidationError(f"{path}: the {name!r} source found no images")
    logger.info(
        "%s: %d row(s) from the %r source, %d class(es), %d skipped",
        path,
        len(index),
        name,
        len(index.class_names),
        len(index.skipped),
    )
    return index
