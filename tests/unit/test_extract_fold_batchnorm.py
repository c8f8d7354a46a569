"""BatchNorm folded into the convolution before it: same features, fewer passes, only where safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from timm.layers import BatchNormAct2d, Conv2dSame, StdConv2d
from torch import nn

from featurekit.backbones import create_backbone, with_layers
from featurekit.extract import ExtractionSettings, batchnorm_folds, folds_batchnorm, prepare_model
from featurekit.extract.fold_batchnorm import fold_batchnorm, foldable_pairs


class _Net(nn.Module):
    """A small backbone in timm's interface; `trunk` is whatever the test wires up."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean((2, 3))


def _random_stats(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so a wrong fold cannot pass."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator))  # type: ignore[union-attr]
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)  # type: ignore[union-attr]
            if module.affine:
                module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
                module.bias.data.copy_(torch.randn(channels, generator=generator))
    return model.eval()


def _embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.forward_head(model.forward_features(x), pre_logits=True)  # type: ignore[operator]


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _images() -> torch.Tensor:
    return torch.randn(3, 3, 24, 24, generator=torch.Generator().manual_seed(1))


def test_folded_network_gives_the_same_features_without_its_batchnorms() -> None:
    trunk = nn.Sequential(
        Conv2dSame(3, 8, 3, stride=2),  # TF "same" padding, as in tf_efficientnet_lite0's stem
        BatchNormAct2d(8, act_layer=nn.ReLU6),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=True),  # depthwise, with its own bias
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 1, bias=False),
        nn.BatchNorm2d(16, affine=False),
    )
    model = _random_stats(_Net(trunk))
    x = _images()
    expected = _embed(model, x)

    assert fold_batchnorm(model) == 3
    assert _norms(model) == 0
    torch.testing.assert_close(_embed(model, x), expected, rtol=1e-5, atol=1e-5)
    # The activation of a BatchNormAct2d survives the fold.
    assert isinstance(trunk[1].act, nn.ReLU6)
    assert not any(p.requires_grad for p in model.parameters())


def test_folding_twice_changes_nothing_more() -> None:
    model = _random_stats(_Net(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))))
    x = _images()
    assert fold_batchnorm(model) == 1
    once = _embed(model, x)
    assert fold_batchnorm(model) == 0
    assert torch.equal(_embed(model, x), once)


class _ConvThenNorm(nn.Module):
    """A convolution and a BatchNorm; each subclass wires them up in its own `forward`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)


class _Residual(_ConvThenNorm):
    """The convolution's output also feeds the sum: folding would change what the sum sees."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class _Shared(_ConvThenNorm):
    """One convolution called twice: its weights serve a path without the BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.conv(x)


class _DataDependent(_ConvThenNorm):
    """Control flow on tensor values: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return y if y.sum() > 0 else -y


@pytest.mark.parametrize(
    "trunk",
    [
        _Residual(),
        _Shared(),
        _DataDependent(),
        # StdConv2d standardises its weight in forward: a folded scale would be undone.
        nn.Sequential(StdConv2d(3, 4, 3), nn.BatchNorm2d(4)),
    ],
    ids=["conv-output-used-twice", "conv-called-twice", "untraceable", "weight-standardised-conv"],
)
def test_unsafe_pairs_are_left_alone(trunk: nn.Module) -> None:
    model = _random_stats(_Net(trunk))
    x = _images()
    expected = _embed(model, x)
    before = _norms(model)

    assert fold_batchnorm(model) == 0
    assert _norms(model) == before
    assert torch.equal(_embed(model, x), expected)


def test_a_model_in_training_mode_is_not_folded() -> None:
    model = _random_stats(_Net(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))).train()
    assert fold_batchnorm(model) == 0
    assert _norms(model) == 1


def test_only_float32_extraction_folds() -> None:
    assert folds_batchnorm("float32")
    assert not folds_batchnorm("bfloat16")  # the folded bias would be rounded to bf16
    backbone = create_backbone("test_efficientnet", weights="random")
    norms = _norms(backbone.model)
    prepared = prepare_model(backbone, torch.device("cpu"), "bfloat16")
    assert _norms(prepared.model) == norms > 0
    assert batchnorm_folds(backbone, "bfloat16") == []


def test_extraction_folds_a_copy_and_leaves_the_callers_backbone_alone() -> None:
    """A caller may train its backbone or run it under autocast after a float32 extraction."""
    backbone = create_backbone("test_efficientnet", weights="random")
    norms = _norms(backbone.model)
    prepared = prepare_model(backbone, torch.device("cpu"), "float32")
    assert _norms(prepared.model) == 0 and prepared.model is not backbone.model
    assert _norms(backbone.model) == norms > 0


def test_a_norm_registered_under_two_names_is_left_alone() -> None:
    """fx names a module by its first name only: folding would leave the second one applying it."""

    class Aliased(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.ModuleDict({"norm": self.bn})

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head["norm"](self.conv(x))

    model = _random_stats(_Net(Aliased()))
    x = _images()
    expected = _embed(model, x)
    assert fold_batchnorm(model) == 0
    assert torch.equal(_embed(model, x), expected)


def test_layers_fold_only_what_their_pass_allows() -> None:
    """`--layers` runs forward_intermediates, not the pre-logits pass: GhostNet's feature 0 is the
    stem convolution's output before its BatchNorm, so that pair must stay apart there."""
    backbone = with_layers(create_backbone("ghostnet_100", weights="random"), layers=(0, -1))
    _random_stats(backbone.model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = backbone.embed(x)
    pairs = batchnorm_folds(backbone, "float32")
    assert ("conv_stem", "bn1") not in pairs and len(pairs) > 10
    assert ("conv_stem", "bn1") in foldable_pairs(backbone.model)  # the pre-logits pass allows it

    prepared = prepare_model(backbone, torch.device("cpu"), "float32")
    with torch.inference_mode():
        folded = prepared.embed(x.contiguous(memory_format=torch.channels_last))
    scale = expected.abs().max().item()
    assert (folded - expected).abs().max().item() < 1e-5 * scale


@pytest.mark.shared_data
def test_default_backbone_with_real_weights_on_real_photos(shared_data: Path) -> None:
    """EfficientNet-Lite0 with its packaged ImageNet weights, as extraction prepares it, against the
    same weights unfolded: every BatchNorm folded, features equal within float32 rounding."""
    photos = sorted((shared_data / "bccd").rglob("*.jpg"))[:4]
    assert len(photos) == 4, f"no BCCD photos under {shared_data / 'bccd'}"
    backbone = create_backbone("tf_efficientnet_lite0")
    size = backbone.preprocess.img_size
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in photos])
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5  # Lite0: mean = std = 0.5

    prepared = prepare_model(backbone, torch.device("cpu"), "float32")

    assert _norms(backbone.model) == 49 and _norms(prepared.model) == 0
    with torch.inference_mode():
        folded = prepared.embed(x.contiguous(memory_format=torch.channels_last))
    expected = _embed(backbone.model, x)
    # Measured: max abs difference 1.5e-5 on features of magnitude ~5 (docs/benchmarks.md).
    assert (folded - expected).abs().max().item() < 1e-4
    assert F.cosine_similarity(folded, expected).min().item() > 0.99999


@pytest.mark.parametrize(
    ("name", "same_padding"), [("test_efficientnet", 0), ("tf_mobilenetv3_small_minimal_100", 5)]
)
def test_extraction_records_the_model_rewrites_in_the_provenance(
    tmp_path: Path, name: str, same_padding: int
) -> None:
    """How many BatchNorm layers were folded, and (same_padding.py) how many TF-"same" padded
    convolutions ran without the padding copy."""
    from featurekit import api
    from featurekit.cache import read_provenance

    root = tmp_path / "images" / "a"
    root.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(root / f"{i}.jpg")
    report = api.extract(
        tmp_path / "images",
        backbone=name,
        weights="random",
        out=tmp_path / "c.h5",
        settings=ExtractionSettings(progress=False, batch_size=2, device="cpu"),
    )
    provenance, _ = read_provenance(report.cache_path)
    folded = provenance["extraction"]["fold_batchnorm"]  # how many BatchNorm layers were folded
    model = create_backbone(name, weights="random").model
    assert folded == len(foldable_pairs(model)) == _norms(model) > 0
    assert provenance["extraction"]["fold_same_padding"] == same_padding
