"""Fast existence checks for manifest paths, with a fix hint for the ones that are missing."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from featurekit.images.sources._files import visible_subfolders

_PROBE_FILES = 5  # missing files probed against every subfolder to find where the images really are
_PROBE_FOLDERS = 50


def missing_files(root: Path, rel_paths: Iterable[str]) -> list[str]:
    """The distinct paths (relative to `root`) that are not files; no file is opened."""
    by_dir: dict[str, list[str]] = {}
    for rel in set(rel_paths):
        by_dir.setdefault(rel.rpartition("/")[0], []).append(rel)
    missing: list[str] = []
    for parent, rels in by_dir.items():
        folder = root / parent if parent else root
        # One directory listing per folder is far cheaper than one stat per row on network file systems.
        try:
            with os.scandir(folder) as entries:
                names = {e.name for e in entries if e.is_file()}
        except OSError:
            names = set()
        # A miss is confirmed with a stat: listings are case-sensitive, some file systems are not.
        missing.extend(r for r in rels if r.rpartition("/")[2] not in names and not (root / r).is_file())
    return sorted(missing)


def missing_file_reasons(root: Path, missing: list[str], *, base_dir: Path) -> dict[str, str]:
    """A reason with a fix hint per missing path; `base_dir` is what a relative image_root is relative to."""
    hint_folder: Path | None = None
    if missing and root.is_dir():
        subfolders = visible_subfolders(root)[:_PROBE_FOLDERS]
        for rel in missing[:_PROBE_FILES]:
            hint_folder = next((s for s in subfolders if (s / rel).is_file()), None)
            if hint_folder is not None:
                break
    relative_to = f"paths are read relative to {root}"
    generic = f"{relative_to}; pass image_root=... (--image-root) if the images live elsewhere"
    reasons: dict[str, str] = {}
    for rel in missing:
        reason = f"file not found: {root / rel}; "
        if hint_folder is not None and (hint_folder / rel).is_file():
            suggested = os.path.relpath(hint_folder, base_dir)
            reason += (
                f"it exists under {hint_folder}/, pass image_root={suggested!r} (--image-root {suggested}); "
                f"{relative_to}"
            )
        else:
            reason += generic
        reasons[rel] = reason
    return reasons
