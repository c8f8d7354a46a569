"""Image sources: each module registers one `(path, options) -> ImageIndex` function in IMAGE_SOURCES.

Adding a source = one new module with one `@IMAGE_SOURCES.register(name)` function, imported below.
"""

from featurekit.images.sources import csv_manifest, folder, npz, unlabelled
from featurekit.images.sources._files import IMAGE_EXTENSIONS
from featurekit.images.sources.registry import IMAGE_SOURCES, SourceFn

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_SOURCES", "SourceFn", "csv_manifest", "folder", "npz", "unlabelled"]
