"""An in-process loader decodes a batch on several threads: same samples, same order, same failures."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from featurekit.backbones import resolve_preprocess
from featurekit.config import PreprocessOverrides
from featurekit.extract.dataset import IndexDataset, collate_samples
from featurekit.extract.transforms import geometry_transform
from featurekit.images import load_image_index


def _jpeg(pixels: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


@pytest.fixture
def mixed_folder(tmp_path: Path, rng: np.random.Generator) -> Path:
    """JPEGs of several sizes, an EXIF-rotated one, greyscale and RGBA PNGs and two broken files."""
    root = tmp_path / "data" / "c"
    root.mkdir(parents=True)
    for i, (height, width) in enumerate([(40, 40), (30, 70), (90, 33), (64, 48), (17, 23)] * 3):
        (root / f"{i:02d}.jpg").write_bytes(_jpeg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    (root / "20_rotated.jpg").write_bytes(_jpeg(rng.integers(0, 256, (20, 44, 3), dtype=np.uint8), exif=exif))
    Image.fromarray(rng.integers(0, 256, (25, 31), dtype=np.uint8)).save(root / "21_grey.png")
    Image.fromarray(rng.integers(0, 256, (25, 31, 4), dtype=np.uint8)).save(root / "22_rgba.png")
    (root / "23_empty.jpg").write_bytes(b"")
    (root / "24_truncated.jpg").write_bytes(_jpeg(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))[:200])
    return root.parent


def _dataset(folder: Path, threads: int, img_size: int = 32) -> IndexDataset:
    pre = resolve_preprocess(
        timm.create_model("test_resnet"), overrides=PreprocessOverrides(img_size=img_size)
    )
    index = load_image_index(folder)
    return IndexDataset(index, rows=range(len(index)), transform=geometry_transform(pre), threads=threads)


@pytest.mark.parametrize("threads", [2, 4, 64])  # 64: more helpers than images
def test_threaded_batch_equals_one_image_at_a_time(mixed_folder: Path, threads: int) -> None:
    serial, threaded = _dataset(mixed_folder, 1), _dataset(mixed_folder, threads)
    positions = list(range(len(serial)))[::-1]  # any order the sampler gives is kept
    expected = [serial[i] for i in positions]
    got = threaded.__getitems__(positions)
    threaded.close()
    assert [row for row, _, _ in got] == [row for row, _, _ in expected]
    for (_, ours, our_bad), (_, theirs, their_bad) in zip(got, expected, strict=True):
        assert our_bad == their_bad
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert theirs is not None and torch.equal(ours, theirs)
    failures = {bad.path: bad.stage for _, _, bad in got if bad is not None}
    assert failures == {"c/23_empty.jpg": "decode", "c/24_truncated.jpg": "decode"}


def test_a_failing_resize_is_its_own_rows_failure_on_any_thread(mixed_folder: Path) -> None:
    """Decoded on the calling thread, resized on a helper: a transform error still lands on the
    row whose image it was, at stage "transform", and the batch goes on."""
    dataset = _dataset(mixed_folder, 3)
    geometry = dataset.transform

    def transform(image: Image.Image) -> torch.Tensor:
        if image.size == (70, 30):
            raise ValueError("no resize for 70x30 today")
        return geometry(image)

    dataset.transform = transform
    positions = list(range(len(dataset)))
    got = dataset.__getitems__(positions)
    dataset.close()
    assert [row for row, _, _ in got] == positions
    failed = {bad.path: (bad.stage, bad.reason) for _, _, bad in got if bad is not None}
    resize_failures = {path for path, (stage, _) in failed.items() if stage == "transform"}
    assert resize_failures == {"c/01.jpg", "c/06.jpg", "c/11.jpg"}
    assert all(failed[path][1] == "ValueError: no resize for 70x30 today" for path in resize_failures)
    assert sum(tensor is not None for _, tensor, _ in got) == len(positions) - 5


def test_threaded_loader_batches_equal_serial_ones(mixed_folder: Path) -> None:
    def batches(threads: int) -> list[torch.Tensor]:
        dataset = _dataset(mixed_folder, threads)
        loader = torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=0, collate_fn=collate_samples)
        try:  # the DataLoader hands __getitems__ a whole batch of positions
            return [batch.images for batch in loader]
        finally:
            dataset.close()

    for ours, theirs in zip(batches(3), batches(1), strict=True):
        assert torch.equal(ours, theirs)


def test_bombs_fail_on_their_row_and_leave_the_warning_filters_alone(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x40 = 1,600: PIL only warns; an error here
    root = tmp_path / "data" / "c"
    root.mkdir(parents=True)
    for i in range(12):
        size = (40, 40) if i % 4 == 0 else (20, 20)
        (root / f"{i:02d}.jpg").write_bytes(_jpeg(rng.integers(0, 256, (*size, 3), dtype=np.uint8)))
    # 16 px output: no resized or cropped image reaches the lowered limit.
    dataset = _dataset(tmp_path / "data", threads=4, img_size=16)
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = dataset.__getitems__(list(range(len(dataset))))
    dataset.close()
    assert [row for row, _, _ in samples] == list(range(12))
    bad = {row: failure.reason for row, _, failure in samples if failure is not None}
    assert sorted(bad) == [0, 4, 8], bad
    assert all(reason.startswith("decompression bomb: 1600 pixels") for reason in bad.values())
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == filters_before


def test_forked_loader_workers_start_their_own_threads(mixed_folder: Path) -> None:
    dataset = _dataset(mixed_folder, 2)
    dataset.__getitems__([0, 1, 2])  # the parent's pool exists before the workers fork
    context = torch.multiprocessing.get_context("fork")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=8, num_workers=2, collate_fn=collate_samples, multiprocessing_context=context
    )
    forked = [batch.images for batch in loader]  # a worker using the parent's pool would hang here
    dataset.close()
    serial = _dataset(mixed_folder, 1)
    expected = [
        batch.images
        for batch in torch.utils.data.DataLoader(serial, batch_size=8, collate_fn=collate_samples)
    ]
    assert len(forked) == len(expected)
    for ours, theirs in zip(forked, expected, strict=True):
        assert torch.equal(ours, theirs)
