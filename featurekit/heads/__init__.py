"""Classifier heads: scikit-learn estimators fitted on cached features.

Adding a head = one new module in this package with one `@HEADS.register("name")` factory;
every public module here is imported automatically, so nothing else needs editing.
Head modules must not import torch at module level (import it inside the GPU code path).
"""

from __future__ import annotations

import importlib
import pkgutil

from featurekit.heads._base import (
    HEADS,
    PREPROCESSING_KINDS,
    HeadFactory,
    HeadInfo,
    head_defaults,
    list_heads,
    make_head,
    persisted_types,
)

__all__ = [
    "HEADS",
    "PREPROCESSING_KINDS",
    "HeadFactory",
    "HeadInfo",
    "head_defaults",
    "list_heads",
    "make_head",
    "persisted_types",
]


def _import_head_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_head_modules()
