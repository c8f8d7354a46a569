"""Safe saving and loading of fitted heads (skops, allow-listed types; pickle only when trusted)."""

from featurekit.persist.allowlist import BASE_ALLOWED_TYPES, allowed_types
from featurekit.persist.compat import (
    CLASS_NAMES,
    FEATURE_DIM,
    PROVENANCE,
    PROVENANCE_KEY,
    check_compatible,
    first_difference,
)
from featurekit.persist.model_file import FORMAT, FORMAT_VERSION, LoadedModel, load_model, save_model

__all__ = [
    "BASE_ALLOWED_TYPES",
    "CLASS_NAMES",
    "FEATURE_DIM",
    "FORMAT",
    "FORMAT_VERSION",
    "PROVENANCE",
    "PROVENANCE_KEY",
    "LoadedModel",
    "allowed_types",
    "check_compatible",
    "first_difference",
    "load_model",
    "save_model",
]
