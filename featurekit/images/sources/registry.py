"""The image-source registry: name -> function(path, options) -> ImageIndex."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from featurekit._registry import Registry
from featurekit.images.index import ImageIndex
from featurekit.images.options import SourceOptions

SourceFn = Callable[[Path, SourceOptions], ImageIndex]

IMAGE_SOURCES: Registry[SourceFn] = Registry("image source")
