"""The device-decode path, run on the CPU: routing to PIL, tensor geometry vs PIL, fallbacks, features.

torchvision's CPU `decode_jpeg` stands in for nvJPEG here (both give the same geometry; nvJPEG's own
IDCT differences can only be measured on a GPU: tests/integration/test_extract_gpu_path.py).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featurekit.backbones import Backbone, create_backbone
from featurekit.config import PreprocessOverrides
from featurekit.errors import InvalidInputError
from featurekit.extract import ExtractionSettings, extract_features
from featurekit.extract import engine as engine_module
from featurekit.extract.dataset import IndexDataset
from featurekit.extract.gpu_decode import (
    EncodedDataset,
    MixedBatchDecoder,
    collate_mixed,
    cpu_only_reason,
    resolve_decode,
    takes_cpu,
)
from featurekit.extract.transforms import BatchNormalizer, TensorGeometry, geometry_transform
from featurekit.images import SourceOptions, load_image_index

# Torch's antialiased float resize rounded to uint8 against PIL's fixed-point uint8 resize, on
# smooth noisy "photos" (bench/decode_tolerance.py, docs/benchmarks.md): max 1 (bilinear) or
# 2 (bicubic) uint8 levels, mean 0.14-0.19 levels, for 32 px to 640 px sources resized to 224 px.
PIXEL_MAX = 2
PIXEL_MEAN = 0.25
# test_resnet (random weights) features of those pixels: max abs difference 1.1e-4 at |f| <= 0.44.
FEATURE_ATOL = 1e-3


def _photo(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    base = Image.fromarray(rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(base.resize((w, h), Image.Resampling.BICUBIC)).astype(np.float64)
    return Image.fromarray(np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, **kw: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **kw)
    return buffer.getvalue()


def _exif_rotated(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    return _jpeg(image, exif=exif)


def _backbone(**overrides: object) -> Backbone:
    return create_backbone(
        "test_resnet",
        weights="random",
        overrides=PreprocessOverrides(img_size=48, **overrides),  # type: ignore[arg-type]
    )


def _tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def test_routing_sends_what_the_device_cannot_decode_to_pil(rng: np.random.Generator) -> None:
    image = _photo(rng, 40, 56)
    png = io.BytesIO()
    image.save(png, "PNG")
    plain = _jpeg(image)
    assert cpu_only_reason(plain, exif_transpose=True) is None
    assert cpu_only_reason(_jpeg(image, progressive=True), exif_transpose=True) is None
    assert cpu_only_reason(_jpeg(image.convert("L")), exif_transpose=True) is None
    assert cpu_only_reason(png.getvalue(), exif_transpose=True) == "not a JPEG"
    assert cpu_only_reason(_jpeg(image.convert("CMYK")), exif_transpose=True) == "CMYK JPEG"
    assert cpu_only_reason(_exif_rotated(image), exif_transpose=True) == "EXIF orientation"
    assert cpu_only_reason(_exif_rotated(image), exif_transpose=False) is None
    assert cpu_only_reason(plain[: len(plain) // 2], exif_transpose=True) is not None  # truncated
    assert cpu_only_reason(b"", exif_transpose=True) == "not a JPEG"


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("mode", ["crop", "squash", "border"])
def test_tensor_geometry_matches_pil_within_two_levels(
    mode: str, interpolation: str, rng: np.random.Generator
) -> None:
    from torchvision.io import ImageReadMode, decode_jpeg

    pre = _backbone(resize_mode=mode, interpolation=interpolation, crop_pct=0.875).preprocess
    files = [_jpeg(_photo(rng, h, w)) for h, w in ((32, 32), (120, 90), (97, 203), (200, 150), (200, 150))]
    pil_geometry = geometry_transform(pre)
    pil = torch.stack([pil_geometry(Image.open(io.BytesIO(f))) for f in files])
    decoded = decode_jpeg([_tensor(f) for f in files], mode=ImageReadMode.RGB)
    ours = TensorGeometry(pre)(list(decoded))
    assert ours.shape == pil.shape and ours.dtype == torch.uint8
    diff = (ours.int() - pil.int()).abs()
    assert diff.max().item() <= PIXEL_MAX
    assert diff.float().mean().item() <= PIXEL_MEAN


def test_tensor_geometry_refuses_what_it_cannot_match() -> None:
    with pytest.raises(ValueError, match="interpolation 'nearest' has no PIL-matching"):
        TensorGeometry(_backbone(interpolation="nearest").preprocess)


def test_decode_choice() -> None:
    pre = _backbone(interpolation="bicubic").preprocess
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_decode("auto", cuda, pre) == "gpu"
    assert resolve_decode("cpu", cuda, pre) == "cpu"
    assert resolve_decode("auto", cpu, pre) == "cpu"
    assert resolve_decode("auto", cuda, _backbone(interpolation="lanczos").preprocess) == "cpu"
    with pytest.raises(InvalidInputError, match="decode 'gpu' cannot be used: the extraction device is cpu"):
        resolve_decode("gpu", cpu, pre)
    with pytest.raises(InvalidInputError, match="decode 'nvjpeg' is not one of auto, cpu, gpu"):
        resolve_decode("nvjpeg", cuda, pre)


def _mixed_folder(root: Path, rng: np.random.Generator) -> Path:
    """JPEGs the device can take, and a PNG, a CMYK JPEG, an EXIF-rotated JPEG and a broken file."""
    (root / "a").mkdir(parents=True)
    (root / "a" / "0.jpg").write_bytes(_jpeg(_photo(rng, 60, 80)))
    _photo(rng, 50, 50).save(root / "a" / "1.png")
    (root / "a" / "2.jpg").write_bytes(_jpeg(_photo(rng, 64, 48).convert("CMYK")))
    (root / "a" / "3.jpg").write_bytes(_exif_rotated(_photo(rng, 40, 90)))
    (root / "a" / "4.jpg").write_bytes(_jpeg(_photo(rng, 90, 40), progressive=True))
    (root / "a" / "5.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9")
    (root / "a" / "6.jpg").write_bytes(_jpeg(_photo(rng, 33, 47).convert("L")))
    (root / "a" / "7.jpg").write_bytes(_jpeg(_photo(rng, 60, 80)))
    return root


def test_encoded_dataset_ships_bytes_only_for_jpegs_the_device_takes(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    index = load_image_index(_mixed_folder(tmp_path, rng), SourceOptions())
    pre = _backbone().preprocess
    cpu = IndexDataset(index, rows=range(len(index)), transform=geometry_transform(pre))
    samples = [EncodedDataset(cpu)[i] for i in range(len(index))]
    names = [index.paths[row].split("/")[-1] for row, *_ in samples]
    assert [n for n, (_, _, data, _) in zip(names, samples, strict=True) if data is not None] == [
        "0.jpg",
        "4.jpg",
        "6.jpg",
        "7.jpg",
    ]
    # PNG, CMYK, EXIF-rotated: decoded by PIL in the worker; the fake JPEG fails there, on its own row.
    assert [n for n, (_, pixels, _, _) in zip(names, samples, strict=True) if pixels is not None] == [
        "1.png",
        "2.jpg",
        "3.jpg",
    ]
    batch = collate_mixed(samples)
    assert [index.paths[f.row] for f in batch.failures] == ["a/5.jpg"]
    assert batch.rows == [0, 1, 2, 3, 4, 6, 7]
    assert batch.pixels_at == [1, 2, 3] and batch.encoded_at == [0, 4, 5, 6]


def test_a_worker_hands_over_a_batch_of_jpegs_in_one_piece(tmp_path: Path, rng: np.random.Generator) -> None:
    """Each tensor a loader worker returns costs the main process a file descriptor: a batch of 300
    JPEGs as 300 tensors failed ("received 0 items of ancdata") with 64 descriptors to spare."""
    import resource

    from torch.utils.data import DataLoader

    (tmp_path / "a").mkdir()
    payload = _jpeg(_photo(rng, 16, 16))
    for i in range(300):
        (tmp_path / "a" / f"{i:03d}.jpg").write_bytes(payload)
    index = load_image_index(tmp_path, SourceOptions())
    cpu = IndexDataset(index, rows=range(len(index)), transform=geometry_transform(_backbone().preprocess))
    loader = DataLoader(
        EncodedDataset(cpu), batch_size=300, num_workers=1, collate_fn=collate_mixed, timeout=30
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Room for what is open already plus 64: a batch's 300 tensors one descriptor each would not fit.
    open_now = Path("/proc/self/fd")
    limit = len(list(open_now.iterdir())) + 64 if open_now.is_dir() else 128
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        (batch,) = list(loader)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert batch.encoded_at == list(range(300)) and batch.encoded_bytes.dim() == 1
    assert [bytes(data.numpy()) for data in batch.encoded] == [payload] * 300


def test_decoder_retries_one_by_one_and_falls_back_to_pil(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    from torchvision.io import ImageReadMode, decode_jpeg

    index = load_image_index(_mixed_folder(tmp_path, rng), SourceOptions())
    pre = _backbone().preprocess
    cpu = IndexDataset(index, rows=range(len(index)), transform=geometry_transform(pre))
    batch = collate_mixed([EncodedDataset(cpu)[i] for i in range(len(index))])
    reference = {row: cpu[row][1] for row in (0, 4, 7)}
    refused = {int(batch.encoded[2].numel()), int(batch.encoded[3].numel())}  # 6.jpg and 7.jpg
    calls: list[int] = []

    def flaky(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        calls.append(len(data))
        if len(data) > 1 or int(data[0].numel()) in refused:
            raise RuntimeError("nvjpeg: unsupported")  # the batch fails, and 6.jpg and 7.jpg alone
        return [decode_jpeg(data[0], mode=ImageReadMode.RGB)]

    (tmp_path / "a" / "6.jpg").unlink()  # so PIL fails on 6.jpg too
    decoder = MixedBatchDecoder(cpu, TensorGeometry(pre), torch.device("cpu"), decode_jpegs=flaky)
    with caplog.at_level(logging.WARNING, logger="featurekit.extract.gpu_decode"):
        rows, images, failures, on_device = decoder(batch)
        decoder.report()
    assert calls == [4, 1, 1, 1, 1]
    assert decoder.fallbacks == 2
    assert "could not take a/6.jpg" in caplog.text  # the first one, named
    assert "2 JPEG(s) the cpu decoder could not take were decoded by PIL instead" in caplog.text
    # 6.jpg failed on the device and in PIL: a failure of its own row; 7.jpg came through PIL instead.
    assert [index.paths[f.row] for f in failures] == ["a/6.jpg"]
    assert rows.tolist() == [0, 1, 2, 3, 4, 7]
    # Recorded per row in the cache: the PNG, CMYK and EXIF-rotated files and 7.jpg went through PIL.
    assert on_device.tolist() == [True, False, False, False, True, False]
    assert torch.equal(images[-1], reference[7])  # type: ignore[arg-type]
    for position, row in ((0, 0), (4, 4)):
        assert (images[position].int() - reference[row].int()).abs().max().item() <= PIXEL_MAX  # type: ignore[union-attr]


def test_extraction_with_device_decoding_matches_the_pil_path(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole engine with the mixed decode path forced on the CPU (decode="gpu" needs CUDA).

    Every JPEG the router sends to the device decoder is decoded there: a decoder that failed on all
    of them would give the PIL path's features too, so the fallback warning must stay silent."""
    index = load_image_index(_mixed_folder(tmp_path, rng), SourceOptions())
    backbone = _backbone(interpolation="bicubic")
    settings = ExtractionSettings(batch_size=3, device="cpu", progress=False, num_workers=0)
    pil = extract_features(backbone, index, settings=settings)
    monkeypatch.setattr(engine_module, "resolve_decode", lambda decode, device, pre, quiet=False: "gpu")
    with caplog.at_level(logging.WARNING, logger="featurekit.extract.gpu_decode"):
        mixed = extract_features(backbone, index, settings=settings)
    assert "decoded by PIL instead" not in caplog.text and "could not take" not in caplog.text
    np.testing.assert_array_equal(mixed.rows, pil.rows)
    assert pil.on_device is not None and not pil.on_device.any()
    assert mixed.on_device is not None
    assert [index.paths[r] for r in mixed.rows[mixed.on_device]] == [
        "a/0.jpg",
        "a/4.jpg",
        "a/6.jpg",
        "a/7.jpg",
    ]
    assert [(f.row, f.stage) for f in mixed.failures] == [(f.row, f.stage) for f in pil.failures]
    assert len(mixed.failures) == 1
    np.testing.assert_allclose(mixed.features, pil.features, rtol=0, atol=FEATURE_ATOL)


def test_a_cpu_share_of_jpegs_takes_the_pil_path_the_same_rows_every_time(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    index = load_image_index(_mixed_folder(tmp_path, rng), SourceOptions())
    pre = _backbone().preprocess
    cpu = IndexDataset(index, rows=range(len(index)), transform=geometry_transform(pre))

    def encoded(share: float) -> list[int]:
        dataset = EncodedDataset(cpu, cpu_share=share)
        return [i for i in range(len(index)) if dataset[i][2] is not None]

    assert encoded(0.0) == [0, 4, 6, 7]  # every JPEG the device takes
    assert encoded(1.0) == []  # all through PIL: exactly the CPU path
    half = encoded(0.5)
    assert half == encoded(0.5) and 0 < len(half) < 4  # some of each, the same rows every run
    everything = EncodedDataset(cpu, cpu_share=1.0)
    for i in (0, 4, 7):
        assert torch.equal(everything[i][1], cpu[i][1])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        EncodedDataset(cpu, cpu_share=1.5)


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.9])
def test_cpu_picks_are_spread_evenly_over_any_run_of_rows(share: float) -> None:
    picks = np.array([takes_cpu(row, share) for row in range(10_000)])
    assert abs(picks.mean() - share) < 0.001
    windows = np.convolve(picks, np.ones(64), mode="valid")  # any 64 consecutive rows (a batch)
    assert np.all(np.abs(windows - 64 * share) <= 2)
    assert not any(takes_cpu(row, 0.0) for row in range(1000))
    for rank in range(4):  # every 4th row from `rank`: one rank's rows under torchrun, 4 ranks
        mine = np.array([takes_cpu(row, share) for row in range(rank, 40_000, 4)])
        assert abs(mine.mean() - share) < 0.002


def test_the_cpu_share_follows_the_row_not_its_position(tmp_path: Path, rng: np.random.Generator) -> None:
    """A resumed run (or another rank) sees the rows at other positions: the same rows go to PIL."""
    index = load_image_index(_mixed_folder(tmp_path, rng), SourceOptions())
    pre = _backbone().preprocess
    rows = [4, 6, 7, 0]
    dataset = EncodedDataset(IndexDataset(index, rows=rows, transform=geometry_transform(pre)), cpu_share=0.5)
    by_pil = {dataset[p][0] for p in range(len(rows)) if dataset[p][1] is not None}
    assert by_pil == {row for row in rows if takes_cpu(row, 0.5)}


def test_engine_with_every_jpeg_on_the_cpu_share_equals_the_pil_path(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = load_image_index(_mixed_folder(tmp_path, rng), SourceOptions())
    backbone = _backbone(interpolation="bicubic")
    settings = ExtractionSettings(batch_size=3, device="cpu", progress=False, num_workers=0)
    pil = extract_features(backbone, index, settings=settings)
    monkeypatch.setattr(engine_module, "resolve_decode", lambda decode, device, pre, quiet=False: "gpu")
    shared = ExtractionSettings(
        batch_size=3, device="cpu", progress=False, num_workers=0, cpu_decode_share=1.0
    )
    assert shared.runtime_record()["cpu_decode_share"] == 1.0  # recorded in the provenance, not keyed
    mixed = extract_features(backbone, index, settings=shared)
    np.testing.assert_array_equal(mixed.rows, pil.rows)
    np.testing.assert_array_equal(mixed.features, pil.features)  # no row took the device decoder


def test_normalised_tensor_path_features_close_to_pil_path(rng: np.random.Generator) -> None:
    from torchvision.io import ImageReadMode, decode_jpeg

    backbone = _backbone(interpolation="bicubic", crop_pct=0.875)
    pre = backbone.preprocess
    files = [_jpeg(_photo(rng, h, w)) for h, w in ((64, 64), (150, 200), (333, 250))]
    pil = torch.stack([geometry_transform(pre)(Image.open(io.BytesIO(f))) for f in files])
    ours = TensorGeometry(pre)(list(decode_jpeg([_tensor(f) for f in files], mode=ImageReadMode.RGB)))
    normalize = BatchNormalizer(pre, torch.device("cpu"))
    with torch.inference_mode():
        a, b = backbone.embed(normalize(pil)), backbone.embed(normalize(ours))
    torch.testing.assert_close(b, a, rtol=0, atol=FEATURE_ATOL)
    assert not torch.equal(a, b)  # the paths do differ a little: the tolerance is what is tested
