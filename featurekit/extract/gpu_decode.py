"""JPEG decoding on the extraction device (nvJPEG through torchvision), with the PIL path as fallback.

With `decode="gpu"` loader workers no longer decode: for each row they read the file's bytes and look
at its header (PIL's lazy open: no pixels decoded). A baseline or progressive RGB/greyscale JPEG that
ends with its end-of-image marker travels as its encoded bytes; every other row — another format,
a CMYK/YCCK JPEG, an EXIF-rotated JPEG when `exif_transpose` is on, a row with a box, an npz row, a
file that cannot be read — goes through the usual PIL decode + geometry in the worker, so one batch
mixes both kinds. The main process then decodes the encoded images in batches on the device
(`torchvision.io.decode_jpeg(..., device="cuda")`), resizes/crops them there with `TensorGeometry`
(the PIL path's geometry, torch's resampling) and puts every image back at its place in the batch.

A decoder error on a batch retries its images one by one; an image the device cannot decode goes
through the PIL path in the main process and only becomes a BadInput when that fails too.
Everything here is device-agnostic, so the CPU tests run the same code with `device="cpu"`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from featurekit.config import Preprocess
from featurekit.errors import InvalidInputError
from featurekit.extract.dataset import BadInput, IndexDataset
from featurekit.extract.transforms import TENSOR_INTERPOLATIONS, TensorGeometry

logger = logging.getLogger(__name__)

DECODES = ("auto", "cpu", "gpu")

_JPEG_MAGIC = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"
_ORIENTATION = 0x0112
# Decoded bytes per device decode call: a batch of large photos is decoded in parts.
_DECODE_BYTES = 1 << 30


def check_decode(decode: str) -> None:
    if decode not in DECODES:
        raise InvalidInputError(f"decode {decode!r} is not one of {', '.join(DECODES)}")


def check_cpu_decode_share(share: float) -> None:
    if not 0.0 <= share <= 1.0:
        raise InvalidInputError(f"cpu decode share {share!r} must be between 0 and 1")


def resolve_decode(decode: str, device: torch.device, pre: Preprocess, *, quiet: bool = False) -> str:
    """ "cpu" (PIL in the loader) or "gpu" (JPEGs decoded on `device`). auto = gpu on CUDA when the
    preprocessing has a tensor version (bilinear or bicubic interpolation). `quiet`: no log line."""
    check_decode(decode)
    if decode == "cpu":
        return "cpu"
    reason = None
    if device.type != "cuda":
        reason = f"the extraction device is {device}, not CUDA"
    elif pre.interpolation not in TENSOR_INTERPOLATIONS:
        reason = (
            f"interpolation {pre.interpolation!r} has no PIL-matching tensor resize "
            f"(GPU decode supports {', '.join(TENSOR_INTERPOLATIONS)})"
        )
    if reason is None:
        return "gpu"
    if decode == "gpu":
        raise InvalidInputError(f"decode 'gpu' cannot be used: {reason}; use --decode cpu or auto")
    if not quiet:
        logger.info("decoding images with PIL in the loader: %s", reason)
    return "cpu"


def cpu_only_reason(data: bytes, *, exif_transpose: bool) -> str | None:
    """Why these file bytes must take the PIL path (None: the device decoder can take them).

    Looks at the header only: PIL's `Image.open` parses markers without decoding pixels.
    """
    if not data.startswith(_JPEG_MAGIC):
        return "not a JPEG"
    if _EOI not in data[-64:]:
        return "no end-of-image marker (truncated, or data after the image)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                return f"{image.format} file"
            if image.mode not in ("RGB", "L"):
                return f"{image.mode} JPEG"
            if exif_transpose and image.getexif().get(_ORIENTATION, 1) not in (1, None):
                return "EXIF orientation"
    except Exception as exc:  # anything odd: the PIL path reports it properly
        return f"header: {type(exc).__name__}"
    return None


# row, decoded pixels (PIL path) or encoded JPEG bytes, failure
MixedSample = tuple[int, torch.Tensor | None, torch.Tensor | None, BadInput | None]


# Golden-ratio sequence: any run of consecutive rows (or every world-th row, a rank's share) gets its
# share of CPU picks, spread evenly.
_GOLDEN = 0.6180339887498949


def takes_cpu(row: int, cpu_share: float) -> bool:
    """Whether the loader decodes this row of the index with PIL although the device could: the
    `cpu_share` of device-decodable JPEGs, chosen by row number, so the same rows whichever rank
    embeds them and whether or not the run resumes."""
    return cpu_share > 0 and ((row + 1) * _GOLDEN) % 1.0 < cpu_share


class EncodedDataset(Dataset[MixedSample]):
    """Rows of `cpu.index` as encoded JPEG bytes where the device can decode them, else as the
    PIL path's uint8 pixels (or its failure).

    `cpu_share` > 0 sends that share of the device-decodable JPEGs through the PIL path anyway, so
    the loader's CPU cores decode beside the device instead of waiting for it: decode and the model
    share the GPU, and this takes part of the decode off it.
    """

    def __init__(self, cpu: IndexDataset, *, cpu_share: float = 0.0) -> None:
        check_cpu_decode_share(cpu_share)
        self.cpu = cpu
        self.cpu_share = cpu_share

    def __len__(self) -> int:
        return len(self.cpu)

    def __getitem__(self, position: int) -> MixedSample:
        row = int(self.cpu.rows[position])
        index = self.cpu.index
        if index.array is None and index.box(row) is None and not takes_cpu(row, self.cpu_share):
            try:
                data = index.file_path(row).read_bytes()
            except OSError:
                data = b""  # the PIL path below reports the error in its own words
            if data and cpu_only_reason(data, exif_transpose=self.cpu.exif_transpose) is None:
                return row, None, torch.frombuffer(bytearray(data), dtype=torch.uint8), None
        row, pixels, bad = self.cpu[position]
        return row, pixels, None, bad


@dataclass
class MixedBatch:
    rows: list[int]  # rows with pixels or bytes, in order
    pixels: torch.Tensor  # (K, H, W, 3) uint8 decoded by the PIL path (K may be 0)
    pixels_at: list[int]  # their positions in `rows`
    # Every JPEG's bytes in one 1-D uint8 tensor: a loader worker hands each tensor over as its own
    # shared-memory file descriptor, and one per JPEG exhausts a 1,024-descriptor limit at batch 128.
    encoded_bytes: torch.Tensor
    encoded_sizes: list[int]
    encoded_at: list[int]
    failures: list[BadInput]

    @property
    def encoded(self) -> list[torch.Tensor]:
        """One 1-D uint8 tensor of JPEG bytes per encoded image (views of `encoded_bytes`)."""
        return list(torch.split(self.encoded_bytes, self.encoded_sizes)) if self.encoded_sizes else []

    def pin_memory(self) -> MixedBatch:
        if self.pixels.numel():
            self.pixels = self.pixels.pin_memory()
        return self


def collate_mixed(samples: list[MixedSample]) -> MixedBatch:
    rows: list[int] = []
    pixels: list[torch.Tensor] = []
    pixels_at: list[int] = []
    encoded: list[torch.Tensor] = []
    encoded_at: list[int] = []
    failures: list[BadInput] = []
    for row, image, data, bad in samples:
        if bad is not None:
            failures.append(bad)
            continue
        if image is not None:
            pixels_at.append(len(rows))
            pixels.append(image)
        elif data is not None:
            encoded_at.append(len(rows))
            encoded.append(data)
        rows.append(row)
    stacked = torch.stack(pixels) if pixels else torch.empty((0, 0, 0, 3), dtype=torch.uint8)
    joined = torch.cat(encoded) if encoded else torch.empty(0, dtype=torch.uint8)
    sizes = [int(data.numel()) for data in encoded]
    return MixedBatch(rows, stacked, pixels_at, joined, sizes, encoded_at, failures)


def _decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    out = decode_jpeg(data, device=device, mode=ImageReadMode.RGB)
    return list(out) if isinstance(out, list) else [out]


class MixedBatchDecoder:
    """MixedBatch → rows, (B, size, size, 3) uint8 images on `device` in row order, new failures."""

    def __init__(
        self,
        cpu: IndexDataset,
        geometry: TensorGeometry,
        device: torch.device,
        *,
        decode_jpegs: Callable[[list[torch.Tensor], torch.device], list[torch.Tensor]] = _decode_jpegs,
    ) -> None:
        self.cpu = cpu
        self.geometry = geometry
        self.device = device
        self.decode_jpegs = decode_jpegs
        self.fallbacks = 0  # images the device decoder could not take, decoded by PIL instead
        self._position = {int(row): i for i, row in enumerate(cpu.rows)}

    def __call__(self, batch: MixedBatch) -> tuple[torch.Tensor, torch.Tensor, list[BadInput], np.ndarray]:
        """rows, images, new failures, and for each row kept whether the device decoded it."""
        size = self.geometry.size
        images = torch.empty((len(batch.rows), size, size, 3), dtype=torch.uint8, device=self.device)
        keep = np.ones(len(batch.rows), dtype=bool)
        on_device = np.zeros(len(batch.rows), dtype=bool)
        failures: list[BadInput] = []
        if batch.pixels_at:
            images[batch.pixels_at] = batch.pixels.to(self.device, non_blocking=True)
        encoded = batch.encoded
        start = 0
        while start < len(encoded):
            stop = self._part_end(encoded, start)
            decoded, missing = self._decode(encoded[start:stop])
            where = batch.encoded_at[start:stop]
            if decoded:
                ok = [where[i] for i in range(len(where)) if i not in missing]
                images[ok] = self.geometry([d for d in decoded if d is not None])
                on_device[ok] = True
            for i in missing:
                pixels, bad = self._fallback(batch.rows[where[i]])
                if pixels is not None:
                    images[where[i]] = pixels.to(self.device)
                else:
                    keep[where[i]] = False
                    failures.extend([bad] if bad is not None else [])
            start = stop
        rows = torch.tensor(batch.rows, dtype=torch.int64)
        if not keep.all():
            mask = torch.from_numpy(keep)
            rows, images = rows[mask], images[mask.to(self.device)]
        return rows, images, failures, on_device[keep]

    def _part_end(self, encoded: list[torch.Tensor], start: int) -> int:
        # JPEGs compress ~10x: bound the decoded bytes of one decode call by the encoded bytes.
        total, stop = 0, start
        while stop < len(encoded) and (stop == start or total < _DECODE_BYTES // 10):
            total += int(encoded[stop].numel())
            stop += 1
        return stop

    def _decode(self, data: list[torch.Tensor]) -> tuple[list[torch.Tensor | None], set[int]]:
        """Decode a list of JPEGs; on a batch error retry one by one. Returns the images (None where
        the decoder failed) and the positions that failed."""
        try:
            return list(self.decode_jpegs(data, self.device)), set()
        except Exception as exc:  # nvJPEG rejects the whole batch for one odd file
            logger.debug("batched JPEG decode failed (%s); decoding one by one", exc)
        decoded: list[torch.Tensor | None] = []
        missing: set[int] = set()
        for i, one in enumerate(data):
            try:
                decoded.append(self.decode_jpegs([one], self.device)[0])
            except Exception as exc:  # this image only: the PIL path gets it
                logger.debug("JPEG decode on %s failed (%s); using PIL", self.device, exc)
                decoded.append(None)
                missing.add(i)
        if not any(d is not None for d in decoded):
            decoded = []
        return decoded, missing

    def _fallback(self, row: int) -> tuple[torch.Tensor | None, BadInput | None]:
        self.fallbacks += 1
        if self.fallbacks == 1:  # the first one loudly: a decoder that never works must not go unseen
            logger.warning(
                "the %s JPEG decoder could not take %s; decoding it (and any others) with PIL",
                self.device,
                self.cpu.index.paths[row],
            )
        _, pixels, bad = self.cpu[self._position[row]]
        return pixels, bad

    def report(self) -> None:
        """Log how many JPEGs fell back to PIL (features then mix both decoders' pixels)."""
        if self.fallbacks:
            logger.warning(
                "%d JPEG(s) the %s decoder could not take were decoded by PIL instead",
                self.fallbacks,
                self.device,
            )
