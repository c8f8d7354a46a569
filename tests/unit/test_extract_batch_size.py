"""--batch-size auto and the out-of-memory back-off: smaller forward passes, never lost or reordered rows."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featurekit.backbones import Backbone, create_backbone
from featurekit.cli.options import add_runtime_options, extraction_settings
from featurekit.config import PreprocessOverrides
from featurekit.errors import InvalidInputError
from featurekit.extract import ExtractionSettings, extract_features
from featurekit.extract.batch_size import (
    CPU_BATCH_SIZE,
    OomBackoff,
    auto_batch_size,
    is_oom,
    probe_batch_size,
)
from featurekit.images import SourceOptions, load_image_index
from featurekit.images.index import ImageIndex


def _oom_above(limit: int, calls: list[int]) -> Callable[[int], int | None]:
    def run(size: int) -> int | None:
        calls.append(size)
        if size > limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: {size} images")
        return None

    return run


def test_probe_doubles_until_out_of_memory() -> None:
    calls: list[int] = []
    assert probe_batch_size(_oom_above(300, calls), start=16, cap=1024) == 256
    assert calls == [16, 32, 64, 128, 256, 512]


def test_probe_stops_at_the_cap_and_at_the_memory_budget() -> None:
    assert probe_batch_size(_oom_above(10_000, []), start=16, cap=128) == 128
    # peak memory: 1 MB per image, budget 100 MB -> 64 (128 would exceed it)
    assert probe_batch_size(lambda size: size * 10**6, start=16, cap=1024, budget=100 * 10**6) == 64


def test_probe_halves_below_the_start_when_even_that_does_not_fit() -> None:
    calls: list[int] = []
    assert probe_batch_size(_oom_above(5, calls), start=16) == 4
    assert calls == [16, 8, 4]
    assert probe_batch_size(_oom_above(0, []), start=16) == 1


def test_probe_lets_other_errors_through() -> None:
    def broken(size: int) -> int:
        raise RuntimeError("not a memory problem")

    with pytest.raises(RuntimeError, match="not a memory problem"):
        probe_batch_size(broken)


def test_oom_is_recognised_also_when_wrapped() -> None:
    try:
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        except torch.cuda.OutOfMemoryError as inner:
            raise RuntimeError("compiled graph failed") from inner
    except RuntimeError as outer:
        assert is_oom(outer)
    assert not is_oom(RuntimeError("CUDA error: device-side assert"))


def test_auto_on_the_cpu_is_the_cpu_default() -> None:
    def forward(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no probing on the CPU")

    assert auto_batch_size(forward, img_size=32, device=torch.device("cpu")) == CPU_BATCH_SIZE == 32


def test_backoff_halves_for_good_and_keeps_rows_in_order(caplog: pytest.LogCaptureFixture) -> None:
    sizes: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        if len(x) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return x * 2

    run = OomBackoff(forward, 16)
    x = torch.arange(20.0).view(10, 2)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(run(x), x * 2)
    assert run.limit == 2  # the first slice is all 10 rows: 10 fails -> 5 fails -> 2
    assert "out of device memory" in caplog.text
    sizes.clear()
    assert torch.equal(run(x[:5]), x[:5] * 2)
    assert sizes == [2, 2, 1]  # sticky: no more attempts at larger slices


def test_backoff_gives_up_at_one_image() -> None:
    def forward(x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        OomBackoff(forward, 4)(torch.zeros(4, 1))


def test_backoff_pads_every_slice_to_the_limit() -> None:
    seen: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        return x.sum(dim=(1, 2, 3), keepdim=False)[:, None]

    x = torch.rand(7, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    out = OomBackoff(forward, 4, pad=True)(x)
    assert seen == [4, 4]
    torch.testing.assert_close(out, x.sum(dim=(1, 2, 3))[:, None])


def _folder(root: Path, rng: np.random.Generator, count: int) -> ImageIndex:
    (root / "a").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, size=(40, 36, 3), dtype=np.uint8)).save(root / "a" / f"{i}.png")
    return load_image_index(root, SourceOptions())


def _backbone() -> Backbone:
    return create_backbone("test_resnet", weights="random", overrides=PreprocessOverrides(img_size=32))


def test_extraction_survives_out_of_memory_with_identical_features(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = _folder(tmp_path, rng, 11)
    backbone = _backbone()
    settings = ExtractionSettings(batch_size=8, device="cpu", progress=False, num_workers=0)
    normal = extract_features(backbone, index, settings=settings)

    real_embed = backbone.embed
    sizes: list[int] = []

    def embed(images: torch.Tensor) -> torch.Tensor:
        sizes.append(len(images))
        if len(images) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_embed(images)

    monkeypatch.setattr(backbone, "embed", embed)
    with caplog.at_level(logging.WARNING):
        squeezed = extract_features(backbone, index, settings=settings)
    assert sizes[:4] == [8, 4, 2, 2]  # halved on the first batch, then kept small
    assert max(sizes[4:]) <= 2
    assert caplog.text.count("out of device memory") == 2
    np.testing.assert_array_equal(squeezed.rows, normal.rows)
    np.testing.assert_array_equal(squeezed.rows, np.arange(11))
    np.testing.assert_allclose(squeezed.features, normal.features, rtol=1e-5, atol=1e-6)


def test_auto_batch_size_extracts_on_the_cpu(tmp_path: Path, rng: np.random.Generator) -> None:
    index = _folder(tmp_path, rng, 3)
    settings = ExtractionSettings(batch_size="auto", device="cpu", progress=False, num_workers=0)
    result = extract_features(_backbone(), index, settings=settings)
    assert result.features.shape == (3, _backbone().feature_dim)


@pytest.mark.parametrize("bad", [0, -3, "big", 2.5, True])
def test_invalid_batch_sizes_are_refused(tmp_path: Path, rng: np.random.Generator, bad: object) -> None:
    index = _folder(tmp_path, rng, 1)
    settings = ExtractionSettings(batch_size=bad, device="cpu", progress=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="batch size must be"):
        extract_features(_backbone(), index, settings=settings)


def test_cli_flags_map_to_settings() -> None:
    parser = argparse.ArgumentParser()
    add_runtime_options(parser)
    defaults = extraction_settings(parser.parse_args([]))
    assert (defaults.batch_size, defaults.compile, defaults.decode) == ("auto", False, "auto")
    assert ExtractionSettings().batch_size == "auto"  # the API's default is the CLI's
    chosen = extraction_settings(parser.parse_args(["--batch-size", "auto", "--compile", "--decode", "cpu"]))
    assert (chosen.batch_size, chosen.compile, chosen.decode) == ("auto", True, "cpu")
    assert extraction_settings(parser.parse_args(["--batch-size", "64"])).batch_size == 64
    with pytest.raises(SystemExit):
        parser.parse_args(["--batch-size", "lots"])
