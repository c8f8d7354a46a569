"""`create_backbone`: name + weights + preprocessing options → a ready, frozen Backbone."""

from __future__ import annotations

import logging

from torch import nn

from featurekit.backbones.backbone import Backbone
from featurekit.backbones.loading import load_model
from featurekit.backbones.preprocess import resolve_preprocess, validate_overrides
from featurekit.config import PreprocessOverrides

logger = logging.getLogger(__name__)


def create_backbone(
    name: str,
    *,
    weights: str | None = None,
    overrides: PreprocessOverrides | None = None,
    random_seed: int = 0,
    keep_classifier: bool = False,
) -> Backbone:
    """A frozen backbone in eval mode with its resolved preprocessing and weight provenance.

    `weights`: None (offline package if installed, else pretrained hub weights; fails fast
    without a network), "random" (seeded by `random_seed`), "hub", "package:<dist>",
    "torchvision:<ENUM>" (for "tv:<name>"), or a local checkpoint path ("file:" prefix optional).
    """
    if overrides is not None:
        validate_overrides(overrides)  # before the (possibly slow) model load
    model, info = load_model(name, weights=weights, random_seed=random_seed, keep_classifier=keep_classifier)
    preprocess = resolve_preprocess(model, overrides=overrides)
    feature_dim = _feature_dim(model)
    logger.info("backbone %s: %d-d features, weights %s (%s)", name, feature_dim, info.spec, info.sha256[:12])
    return Backbone(name=name, model=model, preprocess=preprocess, weights=info, feature_dim=feature_dim)


def _feature_dim(model: nn.Module) -> int:
    """Width of `forward_head(..., pre_logits=True)`: timm's head_hidden_size where a head adds a layer."""
    for attr in ("head_hidden_size", "num_features"):
        value = getattr(model, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise TypeError(f"{type(model).__name__} exposes neither head_hidden_size nor num_features")
