"""The batched extraction loop: loader → backbone.embed under inference_mode → host arrays."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from featurekit.backbones import Backbone
from featurekit.errors import InvalidInputError
from featurekit.extract.dataset import BadInput, IndexDataset, collate_samples
from featurekit.extract.host_memory import keep_freed_memory
from featurekit.extract.transforms import BatchNormalizer, geometry_transform
from featurekit.images.index import ImageIndex

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
TTA_MODES = ("none", "hflip")


@dataclass(frozen=True)
class ExtractionSettings:
    """How to run an extraction. Only the precision (from `amp`) and `tta` change feature values:
    both are recorded in the provenance and keyed."""

    batch_size: int = 32
    num_workers: int | None = None  # None: default_workers(device)
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast on CUDA, fp32 on CPU
    progress: bool = True
    tta: str = "none"  # "hflip": features averaged over the image and its mirror image


@dataclass
class ExtractionResult:
    features: np.ndarray  # (M, D) float32, one row per entry of `rows`
    rows: np.ndarray  # (M,) int64 rows of the index that were extracted
    failures: list[BadInput] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise InvalidInputError(f"device {device!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for, but CUDA is not available; use --device cpu")
    return torch.device(device)


def check_tta(tta: str) -> None:
    if tta not in TTA_MODES:
        raise InvalidInputError(f"tta {tta!r} is not one of {', '.join(TTA_MODES)}")


def resolve_precision(device: torch.device, amp: bool | None) -> str:
    """The numeric precision of the forward pass: part of the provenance key."""
    use_amp = device.type == "cuda" if amp is None else amp
    return "bfloat16" if use_amp else "float32"


def default_workers(device: torch.device, cores: int | None = None) -> int:
    """Loader processes: GPU, one per spare core (at most 8); CPU, cores // 8 (0 below 8 cores).

    On the CPU the model's threads already use every core, so a loader process only competes with
    them: on 2 cores Lite0 ran end to end at 0.87x its model-only speed with in-process decoding and
    0.77x with one worker (docs/benchmarks.md). Decoding in process does not scale with the
    cores, though, so many-core machines get a few workers.
    """
    cores = cores or os.cpu_count() or 1
    if device.type == "cpu":
        return cores // 8
    return max(1, min(8, cores - 1))


def extract_features(
    backbone: Backbone,
    index: ImageIndex,
    *,
    rows: Sequence[int] | None = None,
    settings: ExtractionSettings | None = None,
) -> ExtractionResult:
    """Embed `rows` of `index` (all rows by default) with `backbone`, batched.

    Rows whose image cannot be decoded are returned in `failures`; the others are unaffected.
    """
    settings = settings or ExtractionSettings()
    if settings.batch_size < 1:
        raise InvalidInputError(f"batch size must be at least 1, got {settings.batch_size}")
    check_tta(settings.tta)
    device = resolve_device(settings.device)
    precision = resolve_precision(device, settings.amp)
    selected = list(range(len(index))) if rows is None else list(rows)
    pre = backbone.preprocess
    dataset = IndexDataset(
        index,
        rows=selected,
        transform=geometry_transform(pre),
        exif_transpose=pre.exif_transpose,
        background=pre.rgba_background,
    )
    workers = default_workers(device) if settings.num_workers is None else settings.num_workers
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_samples,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
    if device.type == "cpu":
        keep_freed_memory()  # 4x faster CPU forward passes on glibc (see host_memory.py)
    model = backbone.model.to(device)
    # channels_last speeds up convolutions on both GPU and CPU (3x on CPU for EfficientNet-Lite).
    model = model.to(memory_format=torch.channels_last)
    normalize = BatchNormalizer(pre, device)
    dim = backbone.feature_dim
    features = np.empty((len(selected), dim), dtype=np.float32)
    done_rows = np.empty(len(selected), dtype=np.int64)
    failures: list[BadInput] = []
    filled = 0
    autocast_dtype = torch.bfloat16 if precision == "bfloat16" else None
    bar = tqdm(
        total=len(selected), desc=f"extract {backbone.name}", unit="img", disable=not settings.progress
    )
    with torch.inference_mode():
        for batch in loader:
            failures.extend(batch.failures)
            count = int(batch.rows.numel())
            if count:
                # uint8 travels (4x fewer bytes); ÷255 and mean/std happen batched on the device.
                images = normalize(batch.images.to(device, non_blocking=True))
                with torch.autocast(
                    device.type, dtype=autocast_dtype or torch.float32, enabled=bool(autocast_dtype)
                ):
                    out = backbone.embed(images).float()
                    if settings.tta == "hflip":
                        out = (out + backbone.embed(images.flip(3)).float()) / 2
                features[filled : filled + count] = out.float().cpu().numpy()
                done_rows[filled : filled + count] = batch.rows.numpy()
                filled += count
            bar.update(count + len(batch.failures))
    bar.close()
    for bad in failures:
        logger.warning("skipped %s (%s): %s", bad.path, bad.stage, bad.reason)
    return ExtractionResult(features=features[:filled], rows=done_rows[:filled], failures=failures)
