"""The batched extraction engine (imports torch)."""

from featurekit.extract.dataset import BadInput
from featurekit.extract.engine import (
    ExtractionResult,
    ExtractionSettings,
    check_tta,
    extract_features,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "BadInput",
    "ExtractionResult",
    "ExtractionSettings",
    "check_tta",
    "extract_features",
    "resolve_device",
    "resolve_precision",
]
