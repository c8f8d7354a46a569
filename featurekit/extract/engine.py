"""The batched extraction loop: loader → backbone.embed under inference_mode → host arrays."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
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
    commit_every: int = 2048  # rows per committed cache unit (a crash loses at most one unit)
    on_error: str = "skip"  # "skip": report bad images and go on; "fail": stop at the first one
    max_bad_fraction: float = 0.10  # exit non-zero when more than this fraction of rows was skipped


@dataclass
class FeatureChunk:
    """One batch's worth of output: features of the rows that decoded, failures of those that did not."""

    features: np.ndarray  # (B, D) float32
    rows: np.ndarray  # (B,) int64 rows of the index
    failures: list[BadInput] = field(default_factory=list)


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
    """Embed `rows` of `index` (all rows by default) with `backbone`, batched, into memory.

    Rows whose image cannot be decoded are returned in `failures`; the others are unaffected.
    """
    dim = backbone.feature_dim
    features, done_rows, failures = [np.empty((0, dim), np.float32)], [np.empty(0, np.int64)], []
    for chunk in iter_feature_chunks(backbone, index, rows=rows, settings=settings):
        features.append(chunk.features)
        done_rows.append(chunk.rows)
        failures.extend(chunk.failures)
    return ExtractionResult(
        features=np.concatenate(features), rows=np.concatenate(done_rows), failures=failures
    )


def iter_feature_chunks(
    backbone: Backbone,
    index: ImageIndex,
    *,
    rows: Sequence[int] | None = None,
    settings: ExtractionSettings | None = None,
) -> Iterator[FeatureChunk]:
    """Embed `rows` of `index` with `backbone`, yielding one FeatureChunk per batch, in row order.

    The caller decides where features go (memory, committed cache units) and may stop early by
    closing the generator: work is never half-done past the batch being yielded.
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
    autocast_dtype = torch.bfloat16 if precision == "bfloat16" else None
    bar = tqdm(
        total=len(selected), desc=f"extract {backbone.name}", unit="img", disable=not settings.progress
    )
    try:
        for batch in loader:
            for bad in batch.failures:
                logger.warning("skipped %s (%s): %s", bad.path, bad.stage, bad.reason)
            count = int(batch.rows.numel())
            out = np.empty((0, dim), dtype=np.float32)
            if count:
                with torch.inference_mode():
                    # uint8 travels (4x fewer bytes); ÷255 and mean/std happen batched on the device.
                    images = normalize(batch.images.to(device, non_blocking=True))
                    with torch.autocast(
                        device.type, dtype=autocast_dtype or torch.float32, enabled=bool(autocast_dtype)
                    ):
                        embedded = backbone.embed(images).float()
                        if settings.tta == "hflip":
                            embedded = (embedded + backbone.embed(images.flip(3)).float()) / 2
                    out = embedded.float().cpu().numpy()
            bar.update(count + len(batch.failures))
            yield FeatureChunk(
                features=out, rows=batch.rows.numpy().astype(np.int64), failures=batch.failures
            )
    finally:
        bar.close()
