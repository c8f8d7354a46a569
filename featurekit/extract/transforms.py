"""The backbone's eval transform split in two: per-image geometry in the loader, batched maths after.

timm's eval transform is resize → crop → ToTensor (÷255) → Normalize. Run per image in a loader
worker, the float conversion and normalisation cost ~2.8 of its 3.2 ms per image (EfficientNet-Lite0,
224 px) and quadruple what travels to the main process and the GPU. So workers run only the PIL steps
and hand over uint8 HWC arrays; `BatchNormalizer` then applies the same arithmetic, in the same order
and dtype, to a whole batch on the extraction device. On the CPU the result is bit-identical to the
per-image transform (tests/unit/test_extract_transforms.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import timm.data
import timm.data.transforms
import torch
from PIL import Image
from torchvision import transforms as T

from featurekit.backbones import timm_transform_kwargs
from featurekit.config import Preprocess
from featurekit.extract.pil_geometry import fuse_resize_crop

PilStep = Callable[[Image.Image], Image.Image]


def geometry_transform(pre: Preprocess) -> Callable[[Image.Image], torch.Tensor]:
    """Resize/crop exactly as the backbone's eval transform does; returns a (H, W, 3) uint8 tensor."""
    full = timm.data.create_transform(**timm_transform_kwargs(pre), is_training=False)
    steps = list(full.transforms)
    to_tensor = next(
        (i for i, step in enumerate(steps) if isinstance(step, T.ToTensor | timm.data.MaybeToTensor)), None
    )
    tail = steps[to_tensor + 1 :] if to_tensor is not None else []
    if to_tensor is None or len(tail) != 1 or not isinstance(tail[0], T.Normalize):
        # A timm release with another eval pipeline: fail loudly rather than compute other features.
        raise RuntimeError(f"unexpected timm eval transform for {pre}: {full}")
    # Resize + CenterCrop as one resize of the crop's source box: bit-identical, ~20 % cheaper.
    geometry = fuse_resize_crop(steps[:to_tensor]) or T.Compose(steps[:to_tensor])

    def transform(image: Image.Image) -> torch.Tensor:
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy an RGB one
        return torch.from_numpy(np.array(geometry(rgb), dtype=np.uint8))

    return transform


def multi_size_transform(pre: Preprocess, sizes: tuple[int, ...]) -> Callable[[Image.Image], torch.Tensor]:
    """One decoded image → its `geometry_transform` at each of `sizes`, packed flat in one uint8
    tensor (so the loader, collation and pinning stay one tensor per sample); `unpack_sizes` splits
    a batch of them back into one (B, size, size, 3) tensor per size."""
    per_size = [geometry_transform(dataclasses.replace(pre, img_size=size)) for size in sizes]

    def transform(image: Image.Image) -> torch.Tensor:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return torch.cat([geometry(rgb).reshape(-1) for geometry in per_size])

    return transform


def unpack_sizes(packed: torch.Tensor, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    """(B, Σ size²·3) uint8 from `multi_size_transform` → [(B, size, size, 3) contiguous uint8, …]."""
    out, start = [], 0
    for size in sizes:
        stop = start + size * size * 3
        out.append(packed[:, start:stop].reshape(-1, size, size, 3).contiguous())
        start = stop
    return out


class BatchNormalizer:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float32 in channels_last memory, normalised like timm's eval."""

    def __init__(self, pre: Preprocess, device: torch.device) -> None:
        self.mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # NHWC permuted to NCHW is already channels_last; ToTensor's ÷255 then Normalize's (x-m)/s.
        x = images.permute(0, 3, 1, 2).to(torch.float32).div_(255)
        return x.sub_(self.mean).div_(self.std)


# Interpolations whose tensor resize (torch's antialiased kernels, ported from PIL's) stays within a
# few uint8 levels of PIL's: the GPU decode path supports these. Torch's "nearest" picks other source
# pixels than PIL's and torch has no lanczos, so those keep the PIL path.
TENSOR_INTERPOLATIONS = ("bilinear", "bicubic")

# Float32 elements resized at once: bounds the transient memory of a batch of large photos (1 GiB).
_RESIZE_ELEMENTS = 1 << 28


class TensorGeometry:
    """`geometry_transform` for decoded (3, H, W) uint8 tensors on any device, batched by image size.

    The same timm steps decide every output size (torchvision's Resize, CenterCrop and timm's
    ResizeKeepRatio accept tensors), so the geometry is exactly the PIL path's; only the resampling
    kernel differs: torch's antialiased bilinear/bicubic in float32, rounded to uint8, against PIL's
    fixed-point uint8 kernels. On random smooth photos that is at most a few uint8 levels per pixel
    and ~0.1 on average (tests/unit/test_extract_gpu_decode.py states the bounds it asserts).
    """

    def __init__(self, pre: Preprocess) -> None:
        if pre.interpolation not in TENSOR_INTERPOLATIONS:
            raise ValueError(
                f"interpolation {pre.interpolation!r} has no PIL-matching tensor resize "
                f"(supported: {', '.join(TENSOR_INTERPOLATIONS)})"
            )
        full = timm.data.create_transform(**timm_transform_kwargs(pre), is_training=False)
        self.steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
        for step in full.transforms:
            if isinstance(step, T.ToTensor | timm.data.MaybeToTensor):
                break
            if isinstance(step, timm.data.transforms.CenterCropOrPad):
                self.steps.append(_CenterCropOrPad(tuple(step.size), step.fill))
            elif isinstance(step, T.Resize | T.CenterCrop | timm.data.transforms.ResizeKeepRatio):
                self.steps.append(step)
            else:
                raise ValueError(f"no tensor version of timm eval step {step!r}")
        self.size = pre.img_size

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        """(3, H, W) uint8 images of any sizes → (N, size, size, 3) uint8 on their device, in order."""
        if not images:
            raise ValueError("no images to resize")
        out = torch.empty((len(images), self.size, self.size, 3), dtype=torch.uint8, device=images[0].device)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(tuple(image.shape), []).append(i)
        for shape, positions in by_shape.items():
            step = max(1, _RESIZE_ELEMENTS // max(1, math.prod(shape)))
            for start in range(0, len(positions), step):
                part = positions[start : start + step]
                x = torch.stack([images[i] for i in part]).to(torch.float32)
                for transform in self.steps:
                    x = transform(x)
                out[part] = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return out


class _CenterCropOrPad:
    """timm's CenterCropOrPad for float tensors with a per-channel fill (torchvision's tensor pad
    takes one number only)."""

    def __init__(self, size: tuple[int, ...], fill: object) -> None:
        self.height, self.width = (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
        values: list[Any] = list(fill) if isinstance(fill, list | tuple) else [fill] * 3
        self.fill = torch.tensor([float(v) for v in values], dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.height > height or self.width > width:
            top = (self.height - height) // 2 if self.height > height else 0
            left = (self.width - width) // 2 if self.width > width else 0
            canvas = self.fill.to(x.device).expand(
                x.shape[0], x.shape[1], max(height, self.height), max(width, self.width)
            )
            canvas = canvas.clone()
            canvas[:, :, top : top + height, left : left + width] = x
            x, (height, width) = canvas, canvas.shape[-2:]
        top = round((height - self.height) / 2.0)
        left = round((width - self.width) / 2.0)
        return x[:, :, top : top + self.height, left : left + self.width]
