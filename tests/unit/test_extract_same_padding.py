"""TF-"same" padded convolutions run as one convolution on the CPU (featurekit/extract/same_padding.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.layers import Conv2dSame

from featurekit.backbones import create_backbone, with_layers
from featurekit.extract import prepare_model
from featurekit.extract.engine import same_padding_folds
from featurekit.extract.same_padding import SamePaddedConv, count_same_padding, fold_same_padding


def _conv(kernel: int, stride: int, dilation: int, groups: int, bias: bool) -> Conv2dSame:
    torch.manual_seed(kernel * 100 + stride * 10 + dilation + groups)
    return Conv2dSame(8, 8, kernel, stride=stride, dilation=dilation, groups=groups, bias=bias).eval()


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("groups", [1, 8])  # 8: depthwise, as in EfficientNet
def test_one_convolution_gives_timms_pad_then_convolve(
    kernel: int, stride: int, dilation: int, groups: int
) -> None:
    conv = _conv(kernel, stride, dilation, groups, bias=groups == 1)
    wrapped = SamePaddedConv(conv)
    generator = torch.Generator().manual_seed(3)
    for height, width in ((16, 16), (17, 17), (16, 21), (9, 24), (5, 5)):  # even, odd and mixed totals
        x = torch.randn(2, 8, height, width, generator=generator)
        for memory_format in (torch.contiguous_format, torch.channels_last):
            x = x.contiguous(memory_format=memory_format)
            with torch.inference_mode():
                expected, ours = conv(x), wrapped(x)
            assert ours.shape == expected.shape
            torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_the_activation_is_not_copied_into_a_padded_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the rewrite: no F.pad in the forward pass, except where it cannot apply."""
    calls: list[tuple[int, ...]] = []  # shapes of the padded activations (the 3×3 kernels may be padded)
    real_pad = F.pad

    def counting_pad(x: torch.Tensor, pad: tuple[int, ...], *args: object, **kwargs: object) -> torch.Tensor:
        if x.shape[-1] == 16:
            calls.append(tuple(x.shape))
        return real_pad(x, pad, *args, **kwargs)  # type: ignore[arg-type]

    plain, dilated = SamePaddedConv(_conv(3, 2, 1, 8, False)), SamePaddedConv(_conv(3, 2, 2, 8, False))
    monkeypatch.setattr(torch.nn.functional, "pad", counting_pad)
    with torch.inference_mode():
        plain(torch.randn(1, 8, 16, 16))  # total padding 1: (0, 1) on each axis
        assert calls == []
        dilated(torch.randn(1, 8, 16, 16))  # odd total with dilation 2: timm's own path
    assert len(calls) == 1


def test_fold_same_padding_replaces_every_conv2dsame() -> None:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    assert count_same_padding(model) == 5
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = model.forward_features(x)
        assert fold_same_padding(model) == 5
        assert count_same_padding(model) == 0
        assert fold_same_padding(model) == 0  # once only
        assert sum(isinstance(m, SamePaddedConv) for m in model.modules()) == 5
        ours = model.forward_features(x)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_only_cpu_extraction_rewrites_a_copy() -> None:
    backbone = create_backbone("tf_efficientnet_lite0", weights="random")
    assert same_padding_folds(backbone, torch.device("cpu")) == 5
    assert same_padding_folds(backbone, torch.device("cuda")) == 0  # unmeasured on a GPU: left as timm's
    prepared = prepare_model(backbone, torch.device("cpu"), "bfloat16")  # not folded, still rewritten
    assert count_same_padding(prepared.model) == 0 and prepared.model is not backbone.model
    assert count_same_padding(backbone.model) == 5  # the caller's model is untouched


def test_layers_see_the_same_intermediate_features() -> None:
    backbone = with_layers(create_backbone("tf_efficientnet_lite0", weights="random"), layers=(1, -1))
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = backbone.embed(x)
        prepared = prepare_model(backbone, torch.device("cpu"), "bfloat16")  # the rewrite alone
        ours = prepared.embed(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.shared_data
def test_default_backbone_with_real_weights_on_real_photos(shared_data: Path) -> None:
    """Lite0's packaged ImageNet weights on BCCD photos: the rewrite alone changes features by at
    most float32 rounding (bench/fold_batchnorm.py measured them equal)."""
    photos = sorted((shared_data / "bccd").rglob("*.jpg"))[:4]
    backbone = create_backbone("tf_efficientnet_lite0")
    size = backbone.preprocess.img_size
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in photos])
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = backbone.embed(x)
        rewritten = prepare_model(backbone, torch.device("cpu"), "bfloat16")  # no BatchNorm folding
        ours = rewritten.embed(x)
    assert (ours - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()


def test_a_convolution_under_several_names_gets_one_wrapper_that_follows_its_weights() -> None:
    conv = _conv(3, 2, 1, 1, bias=True)

    class Aliased(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = conv
            self.second = conv  # the same module under a second name
            self.inner = torch.nn.Sequential(conv)  # and under another parent

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.first(x) + self.second(x) + self.inner(x)

    model = Aliased().eval()
    x = torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        expected = model(x)
    assert count_same_padding(model) == 1
    assert fold_same_padding(model) == 1
    assert model.first is model.second is model.inner[0] and count_same_padding(model) == 0
    with torch.inference_mode():
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        conv.weight.mul_(2)  # the wrapper reads the live weight, never a copy taken when it was made
        torch.testing.assert_close(model.first(x), conv(x), rtol=1e-5, atol=1e-5)
