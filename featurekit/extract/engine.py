"""The batched extraction loop: loader → backbone.embed under inference_mode → host arrays."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from featurekit.backbones import Backbone
from featurekit.config import Preprocess
from featurekit.errors import InvalidInputError
from featurekit.extract.batch_size import OomBackoff, auto_batch_size, check_batch_size
from featurekit.extract.compile import check_compile_mode, compile_forward
from featurekit.extract.dataset import BadInput, Batch, IndexDataset, Sample, collate_samples
from featurekit.extract.fold_batchnorm import fold_pairs, foldable_pairs
from featurekit.extract.gpu_decode import (
    EncodedDataset,
    MixedBatch,
    MixedBatchDecoder,
    check_cpu_decode_share,
    check_decode,
    collate_mixed,
    resolve_decode,
)
from featurekit.extract.host_memory import keep_freed_memory
from featurekit.extract.same_padding import count_same_padding, fold_same_padding
from featurekit.extract.transforms import (
    BatchNormalizer,
    TensorGeometry,
    geometry_transform,
    multi_size_transform,
    unpack_sizes,
)
from featurekit.images.index import ImageIndex

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
TTA_MODES = ("none", "hflip")


@dataclass(frozen=True)
class ExtractionSettings:
    """How to run an extraction. Only the precision (from `amp`) and `tta` change feature values:
    both are recorded in the provenance and keyed. `compile`, `decode`, the BatchNorm folding of
    float32 runs (`folds_batchnorm`) and the CPU's copy-free "same" padding move features by float
    and resampling noise only (bounds in docs/benchmarks.md): recorded, not keyed."""

    batch_size: int | str = "auto"  # probed on CUDA (batch_size.py; halved on OOM), 32 on the CPU
    num_workers: int | None = None  # None: default_workers(device)
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast on CUDA, fp32 on CPU
    progress: bool = True
    tta: str = "none"  # "hflip": features averaged over the image and its mirror image
    commit_every: int = 2048  # rows per committed cache unit (a crash loses at most one unit)
    on_error: str = "skip"  # "skip": report bad images and go on; "fail": stop at the first one
    max_bad_fraction: float = 0.10  # exit non-zero when more than this fraction of rows was skipped
    compile: bool = False  # torch.compile the forward pass (compile.py); features equal within float noise
    compile_mode: str = "default"  # or "max-autotune-no-cudagraphs"
    decode: str = "auto"  # "gpu": JPEGs decoded on the device (gpu_decode.py); auto = gpu on CUDA
    cpu_decode_share: float = 0.0  # with GPU decode: share of JPEGs the loader decodes with PIL anyway

    def runtime_record(self) -> dict[str, Any]:
        """The runtime settings for the provenance's unkeyed `extraction` section."""
        return {
            "batch_size": self.batch_size,
            "device": self.device,
            "compile": self.compile,
            "compile_mode": self.compile_mode if self.compile else None,
            "decode": self.decode,
            "cpu_decode_share": self.cpu_decode_share,
        }


@dataclass
class FeatureChunk:
    """One batch's worth of output: features of the rows that decoded, failures of those that did not."""

    features: np.ndarray  # (B, D) float32
    rows: np.ndarray  # (B,) int64 rows of the index
    failures: list[BadInput] = field(default_factory=list)
    on_device: np.ndarray | None = None  # (B,) bool: decoded on the extraction device (else by PIL)
    batch_size: int = 0  # rows per forward pass these were computed in (after any OOM back-off)

    def decoded_on_device(self) -> np.ndarray:
        return self.on_device if self.on_device is not None else np.zeros(len(self.rows), dtype=bool)


@dataclass
class ExtractionResult:
    features: np.ndarray  # (M, D) float32, one row per entry of `rows`
    rows: np.ndarray  # (M,) int64 rows of the index that were extracted
    failures: list[BadInput] = field(default_factory=list)
    on_device: np.ndarray | None = None  # (M,) bool: decoded on the extraction device
    batch_sizes: tuple[int, ...] = ()  # rows per forward pass, every size used


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


def folds_batchnorm(precision: str) -> bool:
    """Whether extraction at `precision` folds BatchNorm into convolutions (recorded, not keyed)."""
    return precision == "float32"


def batchnorm_folds(backbone: Backbone, precision: str) -> list[tuple[str, str]]:
    """The (conv, norm) pairs extraction at `precision` folds (none unless float32)."""
    if not folds_batchnorm(precision):
        return []
    return foldable_pairs(backbone.model, backbone.forward_pass())


def same_padding_folds(backbone: Backbone, device: torch.device) -> int:
    """How many TF-"same" padded convolutions CPU extraction runs without the padding copy
    (same_padding.py; none on other devices)."""
    return count_same_padding(backbone.model) if device.type == "cpu" else 0


def prepare_model(backbone: Backbone, device: torch.device, precision: str) -> Backbone:
    """The backbone extraction runs, ready for inference on `device`.

    channels_last speeds up convolutions on both GPU and CPU (3x on CPU for EfficientNet-Lite); in
    float32, each BatchNorm is folded into the convolution before it (1.25x on CPU for Lite0; see
    fold_batchnorm.py for why not under autocast); on the CPU, timm's TF-"same" padded
    convolutions run without copying their input (1.22x more for Lite0; same_padding.py). Both
    happen in a copy of the model, so the caller's keeps its layers (it may be trained, or run
    under autocast, later); the model is moved to `device` and set to channels_last in place.
    """
    pairs = batchnorm_folds(backbone, precision)
    same_padding = same_padding_folds(backbone, device) > 0
    if pairs or same_padding:
        rewritten = copy.deepcopy(backbone.model)
        fold_pairs(rewritten, pairs)
        if same_padding:
            fold_same_padding(rewritten)
        backbone = copy.copy(backbone)  # everything else as given (attributes included), own model
        backbone.model = rewritten
    # Through Any: torch's own stubs only list `memory_format` for Module.to from 2.12 on, and the
    # GPU machine runs 2.11 (the call itself works on every supported torch).
    cast(Any, backbone.model.to(device)).to(memory_format=torch.channels_last)
    return backbone


def default_workers(device: torch.device, cores: int | None = None) -> int:
    """Loader processes: GPU, one per spare core (at most 8); CPU, cores // 8 (0 below 8 cores).

    On the CPU the model's threads already use every core, so a loader process only competes with
    them: on 2 cores Lite0 ran end to end at 0.87x its model-only speed with in-process decoding and
    0.77x with one worker (docs/benchmarks.md). In process, a batch decodes on a thread per core
    (IndexDataset.threads). Many-core machines keep a few workers: in-process threads were measured
    on 2 cores only.
    """
    cores = cores or os.cpu_count() or 1
    if device.type == "cpu":
        return cores // 8
    return max(1, min(8, cores - 1))


def decode_threads(workers: int) -> int:
    """Decode threads per loader: in process (no workers), a batch's images on every core (PIL
    releases the GIL), between forward passes that use every core themselves; a worker process
    decodes one image at a time."""
    return (os.cpu_count() or 1) if workers == 0 else 1


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
    on_device, batch_sizes = [np.empty(0, bool)], set()
    for chunk in iter_feature_chunks(backbone, index, rows=rows, settings=settings):
        features.append(chunk.features)
        done_rows.append(chunk.rows)
        failures.extend(chunk.failures)
        on_device.append(chunk.decoded_on_device())
        if len(chunk.rows):
            batch_sizes.add(chunk.batch_size)
    return ExtractionResult(
        features=np.concatenate(features),
        rows=np.concatenate(done_rows),
        failures=failures,
        on_device=np.concatenate(on_device),
        batch_sizes=tuple(sorted(batch_sizes)),
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
    check_settings(settings)
    device = resolve_device(settings.device)
    with current_gpu(device):
        yield from _feature_chunks(backbone, index, rows=rows, settings=settings, device=device)


@contextmanager
def current_gpu(device: torch.device) -> Iterator[None]:
    """Make an indexed CUDA `device` the current GPU while extracting, then restore the caller's.

    Events, streams, the pin-memory thread and nvJPEG otherwise use the current GPU (cuda:0 unless
    the caller chose another), so rank 1's copies would be waited for on the wrong GPU.
    """
    if device.type != "cuda" or device.index is None:
        yield
        return
    previous = torch.cuda.current_device()
    torch.cuda.set_device(device)
    try:
        yield
    finally:
        torch.cuda.set_device(previous)


def _feature_chunks(
    backbone: Backbone,
    index: ImageIndex,
    *,
    rows: Sequence[int] | None,
    settings: ExtractionSettings,
    device: torch.device,
) -> Iterator[FeatureChunk]:
    precision = resolve_precision(device, settings.amp)
    selected = list(range(len(index))) if rows is None else list(rows)
    pre = backbone.preprocess
    sizes = backbone.img_sizes if len(backbone.img_sizes) > 1 else ()
    # Several input sizes: each image decoded once by PIL in the loader, resized to every size.
    decode = _decode_for(backbone, settings, device)
    if device.type == "cpu":
        keep_freed_memory()  # 4x faster CPU forward passes on glibc (see host_memory.py)
    backbone = prepare_model(backbone, device, precision)
    forward = _features_fn(backbone, device, precision, settings.tta)
    batch_size = int(settings.batch_size) if settings.batch_size != "auto" else 0
    if not batch_size:
        with torch.inference_mode():
            batch_size = auto_batch_size(forward, img_size=max(sizes or (pre.img_size,)), device=device)
    if settings.compile:
        forward = compile_forward(forward, mode=settings.compile_mode)
    # Every forward pass has one shape (padded, padding dropped): a row's features never depend on
    # how many neighbours failed to decode or on being in the last batch (the CPU picks other
    # convolution kernels for other batch shapes), and a compiled forward never recompiles.
    run = OomBackoff(forward, min(batch_size, max(1, len(selected))), pad=True, device=device)
    workers = _workers_for(settings, device)
    cpu_dataset = IndexDataset(
        index,
        rows=selected,
        transform=multi_size_transform(pre, sizes) if sizes else geometry_transform(pre),
        exif_transpose=pre.exif_transpose,
        background=pre.rgba_background,
        threads=decode_threads(workers),
    )
    prepare, decoder = _batch_preparer(cpu_dataset, pre, decode, device)
    loader = DataLoader(
        EncodedDataset(cpu_dataset, cpu_share=settings.cpu_decode_share) if decode == "gpu" else cpu_dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_mixed if decode == "gpu" else _collate_pinnable,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=(4 if batch_size <= 128 else 2) if workers > 0 else None,
    )
    logger.info(
        "extracting %d rows on %s: batch %d, %s, decode %s, compile %s",
        len(selected),
        device,
        batch_size,
        precision,
        decode,
        settings.compile,
    )
    normalize = BatchNormalizer(pre, device)
    to_device = _HostToDevice(device)
    # Several sizes: each size's images go through their own padded forward pass, blocks concatenated.
    by_size = _SizesRunner(forward, run.limit, normalize, sizes, device) if sizes else None
    dim = backbone.feature_dim
    bar = tqdm(
        total=len(selected), desc=f"extract {backbone.name}", unit="img", disable=not settings.progress
    )
    pending: _Pending | None = None
    try:
        for batch in loader:
            batch_rows, images, failures, on_device = prepare(batch)
            for bad in failures:
                logger.warning("skipped %s (%s): %s", bad.path, bad.stage, bad.reason)
            out: torch.Tensor | None = None
            if batch_rows.numel():
                with torch.inference_mode():
                    # uint8 travels (4x fewer bytes); ÷255 and mean/std happen batched on the device.
                    moved = to_device(images)
                    out = run(normalize(moved)) if by_size is None else by_size(moved)
            passes = run.limit if by_size is None else by_size.limit
            done = _Pending(out, batch_rows, failures, dim, on_device=on_device, batch_size=passes)
            if device.type != "cuda":
                yield done.chunk(bar)
                continue
            # CUDA: this batch's features come back while the next batch is prepared and computed.
            if pending is not None:
                yield pending.chunk(bar)
            pending = done
        if pending is not None:
            yield pending.chunk(bar)
    finally:
        bar.close()
        cpu_dataset.close()
        if decoder is not None:
            decoder.report()


def resolved_runtime(
    backbone: Backbone, settings: ExtractionSettings, device: torch.device
) -> dict[str, Any]:
    """What `settings` resolve to for `backbone` on `device` (for the run record): the device's
    name, the decoder, loader workers and decode threads. The batch size is recorded per journal
    unit instead (auto probing and OOM back-off decide it while the run goes).

    Never raises: a setting that cannot work here is recorded as such, and refused by the engine
    when there are rows to extract, as before."""
    record: dict[str, Any] = {"device": str(device)}
    try:
        record["device_name"] = device_name(device)
        record["decode"] = _decode_for(backbone, settings, device, quiet=True)
        workers = _workers_for(settings, device)
        record.update(
            workers=workers, decode_threads=decode_threads(workers), torch_threads=torch.get_num_threads()
        )
    except Exception as exc:  # the record must never stop an extraction
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


def model_rewrites(backbone: Backbone, device: torch.device, precision: str) -> dict[str, int]:
    """What `prepare_model` will rewrite, for the provenance's `extraction` section: how many
    BatchNorm layers it folds and how many "same" padded convolutions run without the copy."""
    return {
        "fold_batchnorm": len(batchnorm_folds(backbone, precision)),
        "fold_same_padding": same_padding_folds(backbone, device),
    }


def _decode_for(
    backbone: Backbone, settings: ExtractionSettings, device: torch.device, quiet: bool = False
) -> str:
    """ "cpu" or "gpu" (gpu_decode.resolve_decode); several input sizes always decode with PIL."""
    if len(backbone.img_sizes) > 1:
        return _multi_size_decode(settings.decode)
    return resolve_decode(settings.decode, device, backbone.preprocess, quiet=quiet)


def _workers_for(settings: ExtractionSettings, device: torch.device) -> int:
    return default_workers(device) if settings.num_workers is None else settings.num_workers


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({os.cpu_count()} cores)"


def check_settings(settings: ExtractionSettings) -> None:
    """Raise InvalidInputError for any setting out of range (before any model work)."""
    check_batch_size(settings.batch_size)
    check_tta(settings.tta)
    check_decode(settings.decode)
    check_cpu_decode_share(settings.cpu_decode_share)
    check_compile_mode(settings.compile_mode)


def _features_fn(
    backbone: Backbone, device: torch.device, precision: str, tta: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Normalised (B, 3, H, W) images → (B, D) float32 features on the device."""
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32

    def features(images: torch.Tensor) -> torch.Tensor:
        # The caller holds torch.inference_mode(): it stays outside what torch.compile traces.
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            embedded = backbone.embed(images).float()
            if tta == "hflip":
                embedded = (embedded + backbone.embed(images.flip(3)).float()) / 2
            return embedded

    return features


# rows, (B, H, W, 3) uint8 images, failures, (B,) bool: decoded on the device
Prepared = tuple[torch.Tensor, torch.Tensor, list[BadInput], np.ndarray]


def _batch_preparer(
    cpu_dataset: IndexDataset, pre: Preprocess, decode: str, device: torch.device
) -> tuple[Callable[[Any], Prepared], MixedBatchDecoder | None]:
    """Loader batch → Prepared; and the device decoder, if any."""
    if decode != "gpu":
        return (
            lambda batch: (batch.rows, batch.images, batch.failures, np.zeros(len(batch.rows), dtype=bool))
        ), None
    decoder = MixedBatchDecoder(cpu_dataset, TensorGeometry(pre), device)

    def prepare(batch: MixedBatch) -> Prepared:
        rows, images, failures, on_device = decoder(batch)
        return rows, images, batch.failures + failures, on_device

    return prepare, decoder


def _multi_size_decode(decode: str) -> str:
    """Several input sizes always decode with PIL in the loader (one decode, every size from it)."""
    check_decode(decode)
    if decode == "gpu":
        raise InvalidInputError(
            "decode 'gpu' cannot be used with several input sizes (each image is decoded once by PIL "
            "and resized to every size); use --decode cpu or auto"
        )
    return "cpu"


class _SizesRunner:
    """Packed uint8 images of several sizes (`multi_size_transform`) → (B, Σ size_dim) features:
    each size normalised and run through its own padded `OomBackoff`, size-major."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        limit: int,
        normalize: BatchNormalizer,
        sizes: tuple[int, ...],
        device: torch.device,
    ) -> None:
        self.runs = [OomBackoff(forward, limit, pad=True, device=device) for _ in sizes]
        self.normalize = normalize
        self.sizes = sizes

    def __call__(self, packed: torch.Tensor) -> torch.Tensor:
        images = unpack_sizes(packed, self.sizes)
        return torch.cat([run(self.normalize(x)) for run, x in zip(self.runs, images, strict=True)], dim=1)

    @property
    def limit(self) -> int:
        """Rows per forward pass now (the smallest over the sizes, after any OOM back-off)."""
        return min(run.limit for run in self.runs)


class _PinnableBatch(Batch):
    """A loader Batch the DataLoader's pin-memory thread can pin (it calls `pin_memory()`), so the
    non_blocking copy to the GPU is truly asynchronous."""

    def pin_memory(self) -> _PinnableBatch:
        if self.images.numel():
            self.images = self.images.pin_memory()
        return self


def _collate_pinnable(samples: list[Sample]) -> _PinnableBatch:
    batch = collate_samples(samples)
    return _PinnableBatch(rows=batch.rows, images=batch.images, failures=batch.failures)


class _HostToDevice:
    """Moves a loader batch to the extraction device. On CUDA the copy runs on a stream of its own,
    so it overlaps the previous batch's forward pass (on one stream the two would take turns); the
    forward pass waits for it on the GPU, not on the host."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.stream is None or images.device.type == "cuda":
            return images.to(self.device, non_blocking=True)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            moved = images.to(self.device, non_blocking=True)  # pinned by the loader: asynchronous
        compute.wait_stream(self.stream)
        moved.record_stream(compute)  # its memory is reused only after the forward pass is done
        return moved


class _Pending:
    """One batch's features on their way to the host (asynchronously from CUDA)."""

    def __init__(
        self,
        out: torch.Tensor | None,
        rows: torch.Tensor,
        failures: list[BadInput],
        dim: int,
        *,
        on_device: np.ndarray,
        batch_size: int,
    ):
        self.rows, self.failures, self.event = rows, failures, None
        self.on_device, self.batch_size = on_device, batch_size
        self.host: torch.Tensor | np.ndarray
        if out is None:
            self.host = np.empty((0, dim), dtype=np.float32)
        elif out.device.type == "cuda":
            self.host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            self.host.copy_(out, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(torch.cuda.current_stream(out.device))  # the copy's stream, on its GPU
        else:
            self.host = out

    def chunk(self, bar: Any) -> FeatureChunk:
        if self.event is not None:
            self.event.synchronize()
        host = self.host if isinstance(self.host, np.ndarray) else self.host.numpy()
        bar.update(int(self.rows.numel()) + len(self.failures))
        return FeatureChunk(
            features=host,
            rows=self.rows.numpy().astype(np.int64),
            failures=self.failures,
            on_device=self.on_device,
            batch_size=self.batch_size,
        )
