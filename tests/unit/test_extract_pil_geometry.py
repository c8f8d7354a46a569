"""Resize + CenterCrop fused into one PIL resize of the crop's box: bit-identical to timm's two steps."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import timm.data
from PIL import Image
from torchvision import transforms as T

from featurekit.extract import pil_geometry
from featurekit.extract.pil_geometry import fuse_resize_crop, resized_size

INTERPOLATIONS = ("bilinear", "bicubic", "lanczos", "box", "hamming")


def _eval_geometry(img_size: int, crop_pct: float, interpolation: str) -> list[object]:
    full = timm.data.create_transform(
        input_size=(3, img_size, img_size), crop_pct=crop_pct, interpolation=interpolation, is_training=False
    )
    return list(full.transforms[:2])


def _photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    # Smooth content plus noise: sharp edges and flat areas both exercise the filters' rounding.
    yy, xx = np.mgrid[0:height, 0:width]
    base = (np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 60 + 128
    noisy = base[..., None] + rng.normal(0, 25, size=(height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


# Square and non-square, upsampled (CIFAR 32 px) and downsampled, exact and inexact long sides.
SIZES = [
    (350, 350),
    (32, 32),
    (500, 375),
    (375, 500),
    (640, 480),
    (257, 1000),
    (224, 224),
    (256, 300),
    (300, 256),
    (17, 23),
    (1024, 768),
    (333, 251),
]


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize(("img_size", "crop_pct"), [(224, 0.875), (240, 0.95), (224, 1.0), (48, 0.8)])
def test_fused_resize_crop_is_bit_identical_to_timm(
    img_size: int, crop_pct: float, interpolation: str, rng: np.random.Generator
) -> None:
    steps = _eval_geometry(img_size, crop_pct, interpolation)
    fused = fuse_resize_crop(steps)
    assert fused is not None
    reference = T.Compose(steps)
    for width, height in SIZES:
        image = _photo(rng, width, height)
        ours, expected = np.asarray(fused(image)), np.asarray(reference(image))
        assert ours.shape == expected.shape == (img_size, img_size, 3), (width, height)
        assert np.array_equal(ours, expected), (width, height, interpolation)


def test_random_sizes_are_bit_identical(rng: np.random.Generator) -> None:
    steps = _eval_geometry(224, 0.875, "bicubic")
    fused, reference = fuse_resize_crop(steps), T.Compose(steps)
    assert fused is not None
    for width, height in rng.integers(8, 900, size=(40, 2)):
        image = _photo(rng, int(width), int(height))
        assert np.array_equal(np.asarray(fused(image)), np.asarray(reference(image))), (width, height)


def test_the_usual_cases_take_the_box(rng: np.random.Generator) -> None:
    steps = _eval_geometry(224, 0.875, "bicubic")
    fused = fuse_resize_crop(steps)
    assert isinstance(fused, pil_geometry._ResizeCrop)
    for width, height in [(350, 350), (32, 32), (500, 375), (640, 480)]:
        fused(_photo(rng, width, height))
    # Square sources (CIFAR, the benchmark's photos) are exact on both axes and verified.
    assert fused.verified[(350, 350)] and fused.verified[(32, 32)]
    with mock.patch.object(fused, "fallback", side_effect=AssertionError("fell back")):
        fused(_photo(rng, 350, 350))  # verified once: no second look at timm's steps


def test_a_size_whose_box_resize_differs_keeps_timms_steps(rng: np.random.Generator) -> None:
    steps = _eval_geometry(224, 0.875, "bicubic")
    fused = fuse_resize_crop(steps)
    assert isinstance(fused, pil_geometry._ResizeCrop)
    image = _photo(rng, 350, 350)
    with mock.patch.object(pil_geometry, "_run", side_effect=lambda im, plan, rs: im.resize((224, 224))):
        out = fused(image)  # a plan that does not reproduce timm: found on the probe, never used
    assert fused.verified[(350, 350)] is False
    assert np.array_equal(np.asarray(out), np.asarray(T.Compose(steps)(image)))


def test_resized_size_matches_torchvision(rng: np.random.Generator) -> None:
    resize = T.Resize(256)
    for width, height in rng.integers(1, 2000, size=(200, 2)):
        image = Image.new("RGB", (int(width), int(height)))
        assert resize(image).size == resized_size(int(width), int(height), 256)


@pytest.mark.parametrize(
    "steps",
    [
        [T.Resize((256, 200)), T.CenterCrop(224)],  # squash: not a short-side resize
        [T.Resize(256, interpolation=T.InterpolationMode.NEAREST), T.CenterCrop(224)],
        [T.Resize(256, max_size=300), T.CenterCrop(224)],
        [T.Resize(256)],
        [T.CenterCrop(224), T.Resize(256)],
    ],
)
def test_other_pipelines_are_not_fused(steps: list[object]) -> None:
    assert fuse_resize_crop(steps) is None


def test_crop_larger_than_the_image_keeps_center_crop_padding(rng: np.random.Generator) -> None:
    steps = [T.Resize(200), T.CenterCrop(224)]
    fused = fuse_resize_crop(steps)
    assert fused is not None
    image = _photo(rng, 300, 200)
    assert np.array_equal(np.asarray(fused(image)), np.asarray(T.Compose(steps)(image)))


def test_large_numerators_fall_back_to_resizing_the_whole_axis() -> None:
    # 2**31 + 1 px cannot be represented exactly at every centre: the axis must not take a box.
    assert pil_geometry._axis((1 << 31) + 1, 256, 224) is None
    assert pil_geometry._axis(350, 256, 224) == ((21.875, 328.125), 224, None)
