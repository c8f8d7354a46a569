"""`unlabelled` source: a folder of images without classes (for prediction)."""

from __future__ import annotations

from pathlib import Path

from featurekit.images.index import ImageIndex
from featurekit.images.options import SourceOptions
from featurekit.images.sources._files import list_images, require_dir
from featurekit.images.sources._problems import settle_problems
from featurekit.images.sources.registry import IMAGE_SOURCES


@IMAGE_SOURCES.register("unlabelled")
def unlabelled_source(path: Path, options: SourceOptions) -> ImageIndex:
    """Every image under `path` (recursively, sorted); labels are None."""
    require_dir(path, "unlabelled")
    paths = list_images(path)
    settle_problems([], where=str(path), n_rows=len(paths), n_kept=len(paths), strict=options.strict)
    return ImageIndex(source="unlabelled", root=path, paths=paths)
