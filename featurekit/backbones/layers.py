"""Several layers and poolings in one pass: intermediate feature maps pooled side by side.

`with_layers(backbone, layers=(-1, -2), pools=("avg", "max"))` returns a backbone whose `embed`
runs timm's `forward_intermediates` once and concatenates, for each layer and each pooling, the
pooled (B, C) map. The column range of every (layer, pool) block is recorded in the provenance,
so a cache holds them side by side and a head can be fitted on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from featurekit.backbones.backbone import Backbone
from featurekit.errors import InvalidInputError

POOLS = ("avg", "max")


@dataclass(frozen=True)
class FeatureBlock:
    """Columns `start:stop` of a cache row hold `layer` (timm feature index) pooled by `pool`."""

    layer: int
    pool: str
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"layer{self.layer}.{self.pool}"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "layer": self.layer,
            "pool": self.pool,
            "start": self.start,
            "stop": self.stop,
        }


def pool_map(feature_map: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, C, H, W) → (B, C) by global average or max pooling."""
    if pool == "avg":
        return feature_map.mean(dim=(2, 3))
    return feature_map.amax(dim=(2, 3))


def intermediate_features(
    model: torch.nn.Module, images: torch.Tensor, layers: tuple[int, ...], pools: tuple[str, ...]
) -> torch.Tensor:
    """One forward pass → (B, Σ C_layer · len(pools)), layer-major then pool, as `FeatureBlock`s say."""
    maps = model.forward_intermediates(  # type: ignore[operator]
        images, indices=list(layers), intermediates_only=True
    )
    by_index = _absolute_order(model, layers)
    return torch.cat([pool_map(maps[by_index[layer]], pool) for layer in layers for pool in pools], dim=1)


def _absolute_order(model: torch.nn.Module, layers: tuple[int, ...]) -> dict[int, int]:
    # forward_intermediates returns maps in network order, whatever order the indices were given in.
    count = _layer_count(model)
    in_network_order = sorted({_absolute(i, count) for i in layers})
    return {layer: in_network_order.index(_absolute(layer, count)) for layer in layers}


def _absolute(layer: int, count: int) -> int:
    """timm's convention: a negative feature index counts from the end."""
    return count + layer if layer < 0 else layer


def _layer_count(model: torch.nn.Module) -> int:
    info = getattr(model, "feature_info", None)
    if info is None:
        raise InvalidInputError(
            f"{type(model).__name__} has no timm feature_info; "
            "--layers needs a timm model with forward_intermediates"
        )
    return len(info)


def with_layers(
    backbone: Backbone, *, layers: tuple[int, ...], pools: tuple[str, ...] = ("avg",)
) -> Backbone:
    """`backbone` embedding `layers` (timm feature indices, negative from the end) pooled by `pools`."""
    model = backbone.model
    if not layers:
        raise InvalidInputError("--layers needs at least one index, e.g. -1 or -1,-2")
    if len(backbone.img_sizes) > 1:  # its blocks would replace the size blocks
        raise InvalidInputError("with_layers must be applied before with_sizes")
    if not pools or any(p not in POOLS for p in pools) or len(set(pools)) != len(pools):
        raise InvalidInputError(f"--pool {','.join(pools)!r}: give distinct values among {', '.join(POOLS)}")
    if not callable(getattr(model, "forward_intermediates", None)):
        raise InvalidInputError(
            f"backbone {backbone.name!r} has no forward_intermediates; "
            "--layers needs a timm model that has it"
        )
    count = _layer_count(model)
    bad = [i for i in layers if not -count <= i < count]
    absolute = [_absolute(i, count) for i in layers]
    if bad or len(set(absolute)) != len(absolute):
        raise InvalidInputError(
            f"--layers {','.join(map(str, layers))}: {backbone.name} has {count} feature layers "
            f"(indices 0..{count - 1} or -{count}..-1), each at most once"
        )
    channels = _channels(model, layers, backbone.preprocess.img_size)
    blocks: list[FeatureBlock] = []
    for layer in layers:
        for pool in pools:
            start = blocks[-1].stop if blocks else 0
            blocks.append(FeatureBlock(layer, pool, start, start + channels[layer]))
    return replace(
        backbone, layers=tuple(layers), pools=tuple(pools), blocks=tuple(blocks), feature_dim=blocks[-1].stop
    )


def _channels(model: torch.nn.Module, layers: tuple[int, ...], img_size: int) -> dict[int, int]:
    """Width of each requested layer, from one probe image (feature_info layouts differ across models)."""
    probe = torch.zeros(1, 3, img_size, img_size, device=next(model.parameters()).device)
    with torch.inference_mode():
        maps = model.forward_intermediates(  # type: ignore[operator]
            probe, indices=list(layers), intermediates_only=True
        )
    order = _absolute_order(model, layers)
    return {layer: int(maps[order[layer]].shape[1]) for layer in layers}


def parse_layers(text: str) -> tuple[int, ...]:
    """'-1,-2' → (-1, -2); a clear error otherwise."""
    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInputError(
            f"--layers {text!r}: expected comma-separated integers, e.g. -1,-2,-3"
        ) from None
    if not layers:
        raise InvalidInputError(f"--layers {text!r} names no layer; give e.g. -1,-2,-3 (or leave it out)")
    return layers
