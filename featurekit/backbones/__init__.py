"""Backbones: frozen timm / torchvision models with their preprocessing and weight provenance.

backbone = create_backbone("tf_efficientnet_lite0")       # offline package weights
backbone = create_backbone("resnet50", weights="ckpt.pth")  # a local checkpoint
with torch.inference_mode():
    features = backbone.embed(batch)                       # (B, backbone.feature_dim)
"""

from __future__ import annotations

from featurekit.backbones.backbone import Backbone
from featurekit.backbones.factory import create_backbone
from featurekit.backbones.layers import POOLS, FeatureBlock, with_layers
from featurekit.backbones.listing import BackboneInfo, list_backbones
from featurekit.backbones.loading import load_model
from featurekit.backbones.offline import OFFLINE_PACKAGES, OfflinePackage
from featurekit.backbones.preprocess import resolve_preprocess, timm_transform_kwargs, validate_overrides
from featurekit.backbones.sizes import SizeBlock, check_img_sizes, parse_img_sizes, with_sizes
from featurekit.backbones.weights import WeightsInfo, state_dict_sha256

__all__ = [
    "OFFLINE_PACKAGES",
    "POOLS",
    "Backbone",
    "BackboneInfo",
    "FeatureBlock",
    "OfflinePackage",
    "SizeBlock",
    "WeightsInfo",
    "check_img_sizes",
    "create_backbone",
    "list_backbones",
    "load_model",
    "parse_img_sizes",
    "resolve_preprocess",
    "state_dict_sha256",
    "timm_transform_kwargs",
    "validate_overrides",
    "with_layers",
    "with_sizes",
]
