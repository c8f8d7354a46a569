"""The backbone a provenance record describes, rebuilt so new features match the cache's exactly."""

from __future__ import annotations

from typing import Any

from featurekit.backbones import Backbone, create_backbone, with_layers, with_sizes
from featurekit.cache import first_difference, provenance_key
from featurekit.config import Preprocess, PreprocessOverrides
from featurekit.errors import ProvenanceMismatchError
from featurekit.extract.provenance import build_provenance


def weights_for(recorded: dict[str, Any]) -> str | None:
    """The --weights value that gets the recorded weights again."""
    spec = str(recorded["weights"].get("spec", ""))
    if spec.startswith("file:"):
        return spec[len("file:") :]
    if spec == "random":
        return "random"
    return None  # offline package or hub: the default lookup finds them again


def rebuild_backbone(recorded: dict[str, Any], *, expected_key: str, what: str) -> Backbone:
    """The backbone, preprocessing, input size(s), layers and pooling of `recorded`; an error when
    the result's provenance key is not `expected_key` (other weights here, another timm version...)."""
    recorded_size = recorded["preprocess"]["img_size"]
    sizes = tuple(recorded_size) if isinstance(recorded_size, list) else ()  # several (with_sizes)
    pre = Preprocess.from_dict({**recorded["preprocess"], "img_size": sizes[0] if sizes else recorded_size})
    overrides = PreprocessOverrides(
        img_size=pre.img_size,
        resize_mode=pre.resize_mode,
        crop_pct=pre.crop_pct,
        interpolation=pre.interpolation,
        mean=pre.mean,
        std=pre.std,
    )
    seed = recorded["weights"].get("seed")
    backbone = create_backbone(
        recorded["backbone"], weights=weights_for(recorded), overrides=overrides, random_seed=int(seed or 0)
    )
    recorded_layers = recorded["features"].get("layer")
    if isinstance(recorded_layers, list):  # several layers side by side (extract --layers)
        backbone = with_layers(
            backbone, layers=tuple(recorded_layers), pools=tuple(recorded["features"]["pool"])
        )
    if len(sizes) > 1:
        backbone = with_sizes(backbone, sizes)
    tta = recorded["features"].get("tta", "none")
    provenance = build_provenance(backbone, precision=recorded["precision"], extraction={}, tta=tta)
    if provenance_key(provenance) != expected_key:
        diff = first_difference(recorded, provenance)
        raise ProvenanceMismatchError(
            f"cannot rebuild the backbone {what} was made with ({diff[0] if diff else 'provenance'}: "
            f"recorded {diff[1] if diff else '?'!r}, here {diff[2] if diff else '?'!r})"
        )
    return backbone
