"""The Backbone: a frozen model, its resolved preprocessing and its weights' provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from featurekit.backbones.weights import WeightsInfo
from featurekit.config import Preprocess
from featurekit.errors import InvalidInputError


def pre_logits_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """timm's pooled pre-logits embedding: `forward_head(forward_features(x), pre_logits=True)`."""
    features = model.forward_head(model.forward_features(images), pre_logits=True)  # type: ignore[operator]
    return features.flatten(1)


@dataclass(eq=False)
class Backbone:
    name: str  # timm name (e.g. "tf_efficientnet_lite0") or "tv:<torchvision name>"
    model: nn.Module  # eval mode, requires_grad False
    preprocess: Preprocess
    weights: WeightsInfo
    feature_dim: int  # length of the pooled embedding
    # Set by `with_layers`: intermediate layers (timm feature indices) pooled side by side instead of
    # the pre-logits embedding; `blocks` are their FeatureBlocks (column ranges).
    layers: tuple[int, ...] = ()
    pools: tuple[str, ...] = ()
    blocks: tuple[Any, ...] = ()
    # Set by `with_sizes`: several input sizes (preprocess.img_size is the first), each embedded and
    # stored side by side, size-major; `feature_dim` is then the total and `embed` gives one size's
    # `size_dim` columns (the engine runs it once per size). Empty: one size, preprocess.img_size.
    img_sizes: tuple[int, ...] = ()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised float images → (B, size_dim) pooled pre-logits features
        (or the pooled intermediate layers chosen by `with_layers`); `size_dim` is `feature_dim`
        unless `with_sizes` chose several input sizes.

        Run it under the caller's `torch.inference_mode()`; nothing here enables gradients.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise InvalidInputError(f"embed expects a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
        return self.forward_pass()(self.model, images)

    def forward_pass(self) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
        """What `embed` runs, as a function of (model, images): the modules it calls and how they
        connect are what BatchNorm folding traces (featurekit/extract/fold_batchnorm.py)."""
        if self.layers:
            from featurekit.backbones.layers import intermediate_features

            layers, pools = self.layers, self.pools
            return lambda model, images: intermediate_features(model, images, layers, pools)
        return pre_logits_features

    @property
    def size_dim(self) -> int:
        """Columns of one input size's embedding (`feature_dim` unless several `img_sizes`)."""
        return self.feature_dim // max(1, len(self.img_sizes))

    def to(self, device: torch.device | str) -> Backbone:
        """Move the model to `device` in place; returns self for chaining."""
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
