"""Tensor resize/crop (the GPU decode path, run on the CPU) vs the PIL path: pixel and feature differences.

    .venv/bin/python bench/decode_tolerance.py

Prints one line per resize mode and interpolation (numbers in docs/benchmarks.md).
"""

# ruff: noqa: E501
import io
import itertools

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from featurekit.backbones import create_backbone
from featurekit.config import PreprocessOverrides
from featurekit.extract.transforms import BatchNormalizer, TensorGeometry, geometry_transform

rng = np.random.default_rng(0)


def photo(h, w):
    base = (rng.random((h // 8 + 2, w // 8 + 2, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BICUBIC)
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))


sizes = [(32, 32), (350, 350), (480, 640), (333, 500), (97, 203)]
jpegs = []
for h, w in sizes:
    for _ in range(4):
        b = io.BytesIO()
        photo(h, w).save(b, "JPEG", quality=90)
        jpegs.append(b.getvalue())
for mode, interp, size in itertools.product(["crop", "squash", "border"], ["bilinear", "bicubic"], [224]):
    bb = create_backbone(
        "test_resnet",
        weights="random",
        overrides=PreprocessOverrides(img_size=size, resize_mode=mode, interpolation=interp, crop_pct=0.875),
    )
    g = geometry_transform(bb.preprocess)
    tg = TensorGeometry(bb.preprocess)
    pil = torch.stack([g(Image.open(io.BytesIO(d))) for d in jpegs])
    dec = decode_jpeg(
        [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in jpegs], mode=ImageReadMode.RGB
    )
    ten = tg(list(dec))
    diff = (pil.int() - ten.int()).abs()
    norm = BatchNormalizer(bb.preprocess, torch.device("cpu"))
    with torch.inference_mode():
        fa = bb.embed(norm(pil))
        fb = bb.embed(norm(ten))
    fd = (fa - fb).abs().max().item()
    scale = fa.abs().max().item()
    cos = torch.nn.functional.cosine_similarity(fa, fb).min().item()
    print(
        f"{mode:6s} {interp:8s} pixels max {diff.max().item()} mean {diff.float().mean().item():.3f} "
        f">1: {(diff > 1).float().mean().item():.4%} | features max abs {fd:.2e} (max |f| {scale:.2f}) min cos {cos:.6f}"
    )
