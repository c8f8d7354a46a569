"""The split transform (PIL geometry in workers, batched normalisation after) equals timm's eval transform."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import timm.data
import torch
from PIL import Image

from featurekit.backbones import resolve_preprocess, timm_transform_kwargs
from featurekit.config import INTERPOLATIONS, RESIZE_MODES, PreprocessOverrides
from featurekit.extract.transforms import BatchNormalizer, geometry_transform


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_split_transform_is_bit_identical_to_timm(
    mode: str, interpolation: str, rng: np.random.Generator
) -> None:
    pre = resolve_preprocess(
        timm.create_model("test_resnet"),
        overrides=PreprocessOverrides(
            img_size=48,
            resize_mode=mode,
            crop_pct=0.8,
            interpolation=interpolation,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
        ),
    )
    reference = timm.data.create_transform(**timm_transform_kwargs(pre), is_training=False)
    images = [
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        for h, w in ((30, 70), (90, 40), (48, 48))
    ]
    geometry = geometry_transform(pre)
    batch = torch.stack([geometry(image) for image in images])
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (3, 48, 48, 3)

    ours = BatchNormalizer(pre, torch.device("cpu"))(batch)
    expected = torch.stack([reference(image) for image in images])
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours, expected)  # bit-identical, not merely close


def test_greyscale_and_rgba_inputs_become_three_channels(rng: np.random.Generator) -> None:
    pre = resolve_preprocess(timm.create_model("test_resnet"), overrides=PreprocessOverrides(img_size=32))
    geometry = geometry_transform(pre)
    grey = Image.fromarray(rng.integers(0, 256, size=(40, 40), dtype=np.uint8))
    assert tuple(geometry(grey).shape) == (32, 32, 3)
