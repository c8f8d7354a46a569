"""Several input sizes: the packed per-size transform, size checks, blocks, mismatch messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from featurekit.backbones import create_backbone, with_layers, with_sizes
from featurekit.backbones.sizes import check_img_sizes, parse_img_sizes
from featurekit.cache import first_difference
from featurekit.config import Preprocess, PreprocessOverrides
from featurekit.errors import InvalidInputError
from featurekit.extract.provenance import build_provenance
from featurekit.extract.transforms import geometry_transform, multi_size_transform, unpack_sizes

PRE = Preprocess(
    img_size=32,
    resize_mode="crop",
    crop_pct=0.875,
    interpolation="bicubic",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_packed_sizes_equal_the_single_size_geometry(rng: np.random.Generator, mode: str) -> None:
    sizes = (32, 20, 45)
    images = [
        Image.fromarray(rng.integers(0, 256, size=(37 + 5 * i, 61 - 7 * i, 3), dtype=np.uint8)).convert(mode)
        for i in range(3)
    ]
    packed = torch.stack([multi_size_transform(PRE, sizes)(image) for image in images])
    assert packed.dtype == torch.uint8 and packed.shape == (3, sum(s * s * 3 for s in sizes))
    for size, batch in zip(sizes, unpack_sizes(packed, sizes), strict=True):
        single = geometry_transform(Preprocess(**{**PRE.to_dict(), "img_size": size}))
        expected = torch.stack([single(image) for image in images])
        assert batch.is_contiguous() and batch.shape == (3, size, size, 3)
        assert torch.equal(batch, expected)


def test_size_values_are_checked() -> None:
    assert parse_img_sizes("224, 288") == (224, 288)
    assert check_img_sizes([224]) == (224,)
    for bad, message in [
        ((0,), "img_size 0 is invalid"),
        ((224, -1), "img_size -1 is invalid"),
        ((224, 5000), "img_size 5000 is invalid"),
        ((224, True), "img_size True is invalid"),
        ((224, 2.5), "img_size 2.5 is invalid"),
        ((224, 288, 224), "each size at most once"),
        ((), "at least one size"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            check_img_sizes(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="whole numbers of pixels"):
        parse_img_sizes("224,2x")


def test_blocks_and_provenance_of_several_sizes() -> None:
    base = create_backbone("test_resnet", weights="random", overrides=PreprocessOverrides(img_size=32))
    dim = base.feature_dim
    one = with_sizes(base, (40,))
    assert one.img_sizes == () and one.blocks == () and one.preprocess.img_size == 40
    assert build_provenance(one, precision="float32", extraction={})["preprocess"]["img_size"] == 40

    two = with_sizes(base, (32, 40))
    assert (two.feature_dim, two.size_dim, two.preprocess.img_size) == (2 * dim, dim, 32)
    record = build_provenance(two, precision="float32", extraction={})
    assert record["preprocess"]["img_size"] == [32, 40]
    assert record["features"]["layout"] == [
        {"name": "32px", "img_size": 32, "start": 0, "stop": dim},
        {"name": "40px", "img_size": 40, "start": dim, "stop": 2 * dim},
    ]
    with pytest.raises(InvalidInputError, match="before with_sizes"):
        with_layers(two, layers=(-1,))

    layered = with_sizes(with_layers(base, layers=(-1, -2), pools=("avg", "max")), (32, 40))
    names = [block.name for block in layered.blocks]
    assert names == [
        f"{s}px.layer{layer}.{p}" for s in (32, 40) for layer in (-1, -2) for p in ("avg", "max")
    ]
    stops = [block.stop for block in layered.blocks]
    assert stops[-1] == layered.feature_dim == 2 * layered.size_dim
    assert [b.start for b in layered.blocks[1:]] == stops[:-1]  # contiguous, no gap, no overlap

    # A mismatch names the setting that changed, not the dimension or layout derived from it.
    other = build_provenance(with_sizes(base, (32, 48)), precision="float32", extraction={})
    assert first_difference(record, other) == ("preprocess.img_size", [32, 40], [32, 48])
    plain = build_provenance(base, precision="float32", extraction={})
    assert first_difference(plain, record) == ("preprocess.img_size", 32, [32, 40])
