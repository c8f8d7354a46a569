"""The backbone's eval transform split in two: per-image geometry in the loader, batched maths after.

timm's eval transform is resize → crop → ToTensor (÷255) → Normalize. Run per image in a loader
worker, the float conversion and normalisation cost ~2.8 of its 3.2 ms per image (EfficientNet-Lite0,
224 px) and quadruple what travels to the main process and the GPU. So workers run only the PIL steps
and hand over uint8 HWC arrays; `BatchNormalizer` then applies the same arithmetic, in the same order
and dtype, to a whole batch on the extraction device. On the CPU the result is bit-identical to the
per-image transform (tests/unit/test_extract_transforms.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import timm.data
import torch
from PIL import Image
from torchvision import transforms as T

from featurekit.backbones import timm_transform_kwargs
from featurekit.config import Preprocess

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
    geometry = T.Compose(steps[:to_tensor])

    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(geometry(image.convert("RGB")), dtype=np.uint8))

    return transform


class BatchNormalizer:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float32 in channels_last memory, normalised like timm's eval."""

    def __init__(self, pre: Preprocess, device: torch.device) -> None:
        self.mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # NHWC permuted to NCHW is already channels_last; ToTensor's ÷255 then Normalize's (x-m)/s.
        x = images.permute(0, 3, 1, 2).to(torch.float32).div_(255)
        return x.sub_(self.mean).div_(self.std)
