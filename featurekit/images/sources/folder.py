"""`folder` source: one subfolder per class (ImageNet / torchvision ImageFolder layout)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from featurekit.images.index import ImageIndex, SourceProblem
from featurekit.images.options import SourceOptions
from featurekit.images.sources._files import list_images, require_dir, top_level_images, visible_subfolders
from featurekit.images.sources._problems import settle_problems
from featurekit.images.sources.registry import IMAGE_SOURCES

logger = logging.getLogger(__name__)


@IMAGE_SOURCES.register("folder")
def folder_source(path: Path, options: SourceOptions) -> ImageIndex:
    """Class names are the sorted names of the subfolders that hold images (searched recursively)."""
    require_dir(path, "folder")
    paths: list[str] = []
    labels: list[int] = []
    class_names: list[str] = []
    empty: list[str] = []
    for sub in visible_subfolders(path):
        files = list_images(sub)
        if not files:
            empty.append(sub.name)
            continue
        paths.extend(f"{sub.name}/{f}" for f in files)
        labels.extend([len(class_names)] * len(files))
        class_names.append(sub.name)
    if empty:
        # Not a class without examples: a class folder with no image files is almost always a mistake
        # (wrong extension, not yet copied), and an empty class would break stratified splits.
        logger.warning("%s: ignored %d subfolder(s) without images: %s", path, len(empty), empty[:10])
    problems = [
        SourceProblem(
            file=str(path / name),
            row=None,
            reason="image outside any class folder; ignored (move it into a class subfolder, "
            "or use source='unlabelled' for a folder without classes)",
        )
        for name in top_level_images(path)
    ]
    settle_problems(
        problems, where=str(path), n_rows=len(paths) + len(problems), n_kept=len(paths), strict=options.strict
    )
    return ImageIndex(
        source="folder",
        root=path,
        paths=paths,
        class_names=class_names,
        labels=np.asarray(labels, dtype=np.int64),
        skipped=problems,
    )
