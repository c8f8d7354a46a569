"""Finding image files on disk: extensions, hidden entries, deterministic order."""

from __future__ import annotations

import os
from pathlib import Path

from featurekit.errors import InvalidInputError, PathNotFoundError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name[name.rfind(".") :].lower() in IMAGE_EXTENSIONS


def list_images(folder: Path, *, recursive: bool = True) -> list[str]:
    """Image files under `folder` as sorted POSIX paths relative to it; hidden files/folders skipped."""
    found: list[str] = []
    # os.walk lets us prune hidden folders before descending (.git, .ipynb_checkpoints, ...).
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        rel = Path(dirpath).relative_to(folder)
        found.extend((rel / name).as_posix() for name in filenames if is_image_name(name))
    return sorted(found)


def visible_subfolders(folder: Path) -> list[Path]:
    """Non-hidden direct subfolders, sorted by name."""
    return sorted(
        (Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")),
        key=lambda p: p.name,
    )


def top_level_images(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_name(e.name))


def require_dir(path: Path, source: str) -> None:
    if not path.exists():
        raise PathNotFoundError(f"{path} does not exist")
    if not path.is_dir():
        raise InvalidInputError(f"the {source!r} source reads a folder, but {path} is a file")


def require_file(path: Path, source: str, suffix: str) -> None:
    if not path.exists():
        raise PathNotFoundError(f"{path} does not exist")
    if not path.is_file():
        raise InvalidInputError(f"the {source!r} source reads a {suffix} file, but {path} is a folder")


def contains_image(folder: Path) -> bool:
    """Whether any image lies under `folder` (stops at the first one found)."""
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(is_image_name(name) for name in filenames):
            return True
    return False
