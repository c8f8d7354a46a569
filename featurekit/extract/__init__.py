"""The batched extraction engine (imports torch)."""

from featurekit.extract.dataset import BadInput
from featurekit.extract.engine import (
    ExtractionResult,
    ExtractionSettings,
    FeatureChunk,
    batchnorm_folds,
    check_settings,
    check_tta,
    extract_features,
    folds_batchnorm,
    iter_feature_chunks,
    prepare_model,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "BadInput",
    "ExtractionResult",
    "ExtractionSettings",
    "FeatureChunk",
    "batchnorm_folds",
    "check_settings",
    "check_tta",
    "extract_features",
    "folds_batchnorm",
    "iter_feature_chunks",
    "prepare_model",
    "resolve_device",
    "resolve_precision",
]
