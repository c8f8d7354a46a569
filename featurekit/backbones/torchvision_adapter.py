"""torchvision classification models as backbones (`tv:<name>`), in timm's feature interface.

Each adapter adopts the torchvision model's own submodules and parameters, so its state dict
has exactly torchvision's key names (a torchvision checkpoint loads unchanged), and exposes
`forward_features` (unpooled) / `forward_head(x, pre_logits=True)` (pooled pre-classifier features).
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

import torch
from torch import nn

from featurekit._registry import Registry
from featurekit.errors import UnknownNameError

TV_PREFIX = "tv:"

# Keyed by name prefix; the longest matching prefix wins (e.g. "resnext" before "resnet").
TV_FAMILIES: Registry[type[TorchvisionBackbone]] = Registry("torchvision backbone family")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionBackbone(nn.Module):
    """Base adapter; subclasses name the classifier and implement the two forward halves."""

    classifier_path: ClassVar[str]  # dotted path of the final Linear inside the torchvision model

    def __init__(self, model: nn.Module, *, name: str) -> None:
        super().__init__()
        for child_name, child in model.named_children():
            self.add_module(child_name, child)
        for param_name, param in model.named_parameters(recurse=False):
            self.register_parameter(param_name, param)
        classifier = self.get_submodule(self.classifier_path)
        self.num_classes: int = getattr(classifier, "out_features", 0)
        self.num_features: int = getattr(classifier, "in_features", 0)
        self.pretrained_cfg: dict[str, Any] = {
            "architecture": f"{TV_PREFIX}{name}",
            "classifier": self.classifier_path,
            **_data_config(name),
        }

    def reset_classifier(self, num_classes: int = 0) -> None:
        if num_classes != 0:
            raise ValueError("torchvision backbones only support removing the classifier (num_classes=0)")
        parent_path, _, leaf = self.classifier_path.rpartition(".")
        parent = self.get_submodule(parent_path) if parent_path else self
        setattr(parent, leaf, nn.Identity())
        self.num_classes = 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@TV_FAMILIES.register("resnet")
@TV_FAMILIES.register("resnext")
@TV_FAMILIES.register("wide_resnet")
class ResNetBackbone(TorchvisionBackbone):
    classifier_path = "fc"
    conv1: nn.Module
    bn1: nn.Module
    relu: nn.Module
    maxpool: nn.Module
    layer1: nn.Module
    layer2: nn.Module
    layer3: nn.Module
    layer4: nn.Module
    avgpool: nn.Module
    fc: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


@TV_FAMILIES.register("regnet")
class RegNetBackbone(TorchvisionBackbone):
    classifier_path = "fc"
    stem: nn.Module
    trunk_output: nn.Module
    avgpool: nn.Module
    fc: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk_output(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


@TV_FAMILIES.register("efficientnet")
class EfficientNetBackbone(TorchvisionBackbone):
    classifier_path = "classifier.1"  # classifier = Sequential(Dropout, Linear)
    features: nn.Module
    avgpool: nn.Module
    classifier: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.classifier(x)


@TV_FAMILIES.register("convnext")
class ConvNeXtBackbone(TorchvisionBackbone):
    classifier_path = "classifier.2"  # classifier = Sequential(LayerNorm2d, Flatten, Linear)
    features: nn.Module
    avgpool: nn.Module
    classifier: nn.Sequential

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[1](self.classifier[0](self.avgpool(x)))  # the norm belongs to the features
        return x if pre_logits else self.classifier[2](x)


@TV_FAMILIES.register("vit")
class ViTBackbone(TorchvisionBackbone):
    classifier_path = "heads.head"
    conv_proj: nn.Module
    encoder: nn.Module
    heads: nn.Module
    class_token: nn.Parameter

    def __init__(self, model: nn.Module, *, name: str) -> None:
        super().__init__(model, name=name)
        self.patch_size: int = model.patch_size  # type: ignore[assignment]
        self.hidden_dim: int = model.hidden_dim  # type: ignore[assignment]
        self.image_size: int = model.image_size  # type: ignore[assignment]
        self.pretrained_cfg["fixed_input_size"] = True  # position embeddings are fixed to image_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(
                f"torchvision ViT expects {self.image_size}x{self.image_size} inputs, got {h}x{w}"
            )
        x = self.conv_proj(x).reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.encoder(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0]
        return x if pre_logits else self.heads(x)


def is_tv_name(name: str) -> bool:
    return name.startswith(TV_PREFIX)


def tv_model_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def supported_tv_names() -> list[str]:
    return [f"{TV_PREFIX}{n}" for n in tv_model_names() if _family(n) is not None]


def check_tv_name(name: str) -> type[TorchvisionBackbone]:
    """The adapter class for a `tv:<name>`; UnknownNameError with close matches otherwise."""
    arch = name.removeprefix(TV_PREFIX)
    family = _family(arch)
    families = ", ".join(TV_FAMILIES.names())
    if arch in tv_model_names() and family is None:
        raise UnknownNameError(
            f"torchvision model {name!r} has no featurekit adapter (supported families: {families}); "
            "use its timm counterpart instead (see `featurekit list backbones`)"
        )
    if family is None or arch not in tv_model_names():
        close = difflib.get_close_matches(name, supported_tv_names(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown torchvision backbone {name!r}{hint} (supported families: {families}; "
            "see `featurekit list backbones`)"
        )
    return family


def create_tv_model(name: str) -> TorchvisionBackbone:
    """A randomly initialised `tv:<name>` adapter (weights are loaded by the caller)."""
    import torchvision

    family = check_tv_name(name)
    arch = name.removeprefix(TV_PREFIX)
    return family(torchvision.models.get_model(arch, weights=None), name=arch)


def tv_weights_enum(arch: str, spec: str | None) -> Any:
    """torchvision weights: `spec` "IMAGENET1K_V2" or "ResNet50_Weights.IMAGENET1K_V2"; None = DEFAULT."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch.removeprefix(TV_PREFIX))
    if spec is None or spec == "DEFAULT":
        return enum.DEFAULT
    member = spec.rpartition(".")[2]
    try:
        return enum[member]
    except KeyError:
        allowed = ", ".join(m.name for m in enum)
        raise UnknownNameError(
            f"unknown torchvision weights {spec!r} for {arch}; use one of {allowed}"
        ) from None


def _family(arch: str) -> type[TorchvisionBackbone] | None:
    prefixes = [p for p in TV_FAMILIES.names() if arch.startswith(p)]
    return TV_FAMILIES.get(max(prefixes, key=len)) if prefixes else None


def _data_config(arch: str) -> dict[str, Any]:
    """timm-style data config from the DEFAULT weights' eval transform (no download), else ImageNet's."""
    config: dict[str, Any] = {
        "input_size": (3, 224, 224),
        "interpolation": "bilinear",
        "crop_pct": 0.875,
        "crop_mode": "center",
        "mean": _IMAGENET_MEAN,
        "std": _IMAGENET_STD,
    }
    try:
        transform = tv_weights_enum(arch, None).transforms()
    except (ValueError, KeyError, AttributeError, UnknownNameError):
        return config
    crop = int(transform.crop_size[0])
    resize = int(transform.resize_size[0])
    config.update(
        input_size=(3, crop, crop),
        interpolation=transform.interpolation.value,
        # rounded so timm's floor(crop / crop_pct) gives back torchvision's resize size
        crop_pct=round(crop / resize, 4),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
    )
    return config
