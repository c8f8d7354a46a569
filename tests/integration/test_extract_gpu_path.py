"""The CUDA extraction path: nvJPEG decode vs PIL, compile vs eager, auto batch size, OOM back-off.

Skipped without CUDA. Each test prints what it measured (run with -s to see it) so a GPU session can
copy the numbers into docs/benchmarks.md; the asserted bounds are the ones featurekit promises for
not keying the decode choice and the compile flag.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from featurekit.backbones import Backbone, create_backbone
from featurekit.config import PreprocessOverrides
from featurekit.extract import ExtractionSettings, extract_features
from featurekit.extract.batch_size import auto_batch_size
from featurekit.extract.transforms import TensorGeometry, geometry_transform
from featurekit.images import SourceOptions, load_image_index
from featurekit.images.index import ImageIndex

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's: allow a few more levels than the CPU
# tensor path's 2 (tests/unit/test_extract_gpu_decode.py). To be confirmed by the first GPU run.
PIXEL_MAX = 8
PIXEL_MEAN = 1.0
# bf16 autocast already moves features by ~1e-2 relative; the decode path must stay well inside that.
MIN_COSINE = 0.999
# The whole GPU default path against the CPU's fp32 reference: bf16 rounding dominates.
GPU_BF16_MIN_COSINE = 0.99


def _photo(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    base = Image.fromarray(rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(base.resize((w, h), Image.Resampling.BICUBIC)).astype(np.float64)
    return Image.fromarray(np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8))


def _jpegs(root: Path, rng: np.random.Generator, count: int = 24) -> ImageIndex:
    (root / "a").mkdir(parents=True)
    sizes = ((350, 350), (480, 640), (97, 203), (32, 32))
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        _photo(rng, h, w).save(root / "a" / f"{i:03d}.jpg", quality=90, progressive=i % 5 == 0)
    Image.fromarray(np.asarray(_photo(rng, 80, 80))).save(root / "a" / "png.png")
    _photo(rng, 64, 64).convert("CMYK").save(root / "a" / "cmyk.jpg")
    return load_image_index(root, SourceOptions())


def _agreement(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Min cosine over rows, max abs difference, and that over the reference's largest value."""
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    diff = float(np.abs(ours - reference).max())
    return float(((ours * reference).sum(1) / norms).min()), diff, diff / float(np.abs(reference).max())


def _backbone(name: str = "resnet18") -> Backbone:
    return create_backbone(name, weights="random", overrides=PreprocessOverrides(interpolation="bicubic"))


def test_nvjpeg_pixels_close_to_pil(tmp_path: Path, rng: np.random.Generator) -> None:
    from torchvision.io import ImageReadMode, decode_jpeg

    index = _jpegs(tmp_path, rng)
    pre = _backbone().preprocess
    files = [index.file_path(i) for i in range(len(index)) if index.paths[i][-5].isdigit()]  # not png/cmyk
    data = [torch.frombuffer(bytearray(f.read_bytes()), dtype=torch.uint8) for f in files]
    decoded = decode_jpeg(data, device="cuda", mode=ImageReadMode.RGB)
    ours = TensorGeometry(pre)(list(decoded)).cpu()
    pil = torch.stack([geometry_transform(pre)(Image.open(io.BytesIO(f.read_bytes()))) for f in files])
    diff = (ours.int() - pil.int()).abs()
    print(f"\nnvJPEG + tensor geometry vs PIL: max {diff.max().item()}, mean {diff.float().mean():.3f}")
    assert diff.max().item() <= PIXEL_MAX
    assert diff.float().mean().item() <= PIXEL_MEAN


@pytest.mark.parametrize("amp", [False, True])
def test_gpu_decode_features_match_cpu_decode(tmp_path: Path, rng: np.random.Generator, amp: bool) -> None:
    index = _jpegs(tmp_path, rng)
    backbone = _backbone()
    common = {"batch_size": 8, "device": "cuda", "progress": False, "num_workers": 2, "amp": amp}
    cpu = extract_features(backbone, index, settings=ExtractionSettings(decode="cpu", **common))  # type: ignore[arg-type]
    gpu = extract_features(backbone, index, settings=ExtractionSettings(decode="gpu", **common))  # type: ignore[arg-type]
    np.testing.assert_array_equal(gpu.rows, cpu.rows)
    assert len(gpu.rows) == len(index)
    # What the cache records per row (rows/decoder): every JPEG on the device but the CMYK one.
    assert cpu.on_device is not None and not cpu.on_device.any()
    assert gpu.on_device is not None
    assert sorted(index.paths[r] for r in gpu.rows[~gpu.on_device]) == ["a/cmyk.jpg", "a/png.png"]
    cos, diff, rel = _agreement(gpu.features, cpu.features)
    print(f"\ndecode gpu vs cpu (amp={amp}): min cosine {cos:.6f}, max abs {diff:.2e}, max rel {rel:.2e}")
    assert cos >= MIN_COSINE
    # nvJPEG + torch resampling never give PIL's exact pixels: equal features would mean every JPEG
    # fell back to PIL and the device decoder was never tested.
    assert diff > 0


def test_gpu_path_against_the_cpu_reference(tmp_path: Path, rng: np.random.Generator) -> None:
    """The GPU defaults (nvJPEG, bf16 autocast, channels_last) and fp32 on the GPU, each against the
    CPU reference (PIL, fp32, device cpu): the tolerance docs/benchmarks.md states for the GPU path."""
    index = _jpegs(tmp_path, rng)
    backbone = _backbone()
    common = {"batch_size": 8, "progress": False, "num_workers": 2}
    reference = extract_features(backbone, index, settings=ExtractionSettings(device="cpu", **common))  # type: ignore[arg-type]
    for amp, min_cosine in ((True, GPU_BF16_MIN_COSINE), (False, MIN_COSINE)):
        gpu = extract_features(backbone, index, settings=ExtractionSettings(device="cuda", amp=amp, **common))  # type: ignore[arg-type]
        np.testing.assert_array_equal(gpu.rows, reference.rows)
        cos, diff, rel = _agreement(gpu.features, reference.features)
        print(
            f"\nGPU path (amp={amp}, decode auto) vs CPU reference: min cosine {cos:.6f}, "
            f"max abs {diff:.2e}, max rel {rel:.2e}"
        )
        assert cos >= min_cosine


def test_auto_batch_size_probes_the_gpu() -> None:
    backbone = _backbone()
    backbone.model.to("cuda").to(memory_format=torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return backbone.embed(x)

    with torch.inference_mode():
        chosen = auto_batch_size(forward, img_size=224, device=torch.device("cuda"))
    print(f"\nauto batch size for resnet18 at 224 px: {chosen}")
    assert chosen >= 16 and chosen & (chosen - 1) == 0


def test_real_out_of_memory_backs_off(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    """Leave the GPU room for ~2 images, then extract with batches of 8: halved, same features."""
    index = _jpegs(tmp_path, rng, count=8)
    backbone = _backbone("resnet50")
    settings = ExtractionSettings(batch_size=8, device="cuda", progress=False, num_workers=0, decode="cpu")

    def peak_extra(batch_size: int) -> tuple[Any, int]:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        result = extract_features(
            backbone, index, settings=dataclasses.replace(settings, batch_size=batch_size)
        )
        return result, torch.cuda.max_memory_allocated() - base

    peak_extra(1)  # warm-up: moves the model to the GPU (its weights are then in `base`), cuDNN set up
    _, one = peak_extra(1)
    reference, eight = peak_extra(8)
    torch.cuda.empty_cache()  # the cached blocks would otherwise serve the squeezed run
    free, _ = torch.cuda.mem_get_info()
    room = one + (eight - one) // 4  # fits ~2 images, not 8
    ballast = torch.empty(max(0, free - room), dtype=torch.uint8, device="cuda")
    try:
        with caplog.at_level(logging.WARNING, logger="featurekit.extract.batch_size"):
            squeezed = extract_features(backbone, index, settings=settings)
    except torch.cuda.OutOfMemoryError:
        pytest.skip("not even one image fits beside the ballast")
    finally:
        del ballast
        torch.cuda.empty_cache()
    print(f"\npeak memory: 1 image {one / 2**20:.0f} MiB, 8 images {eight / 2**20:.0f} MiB")
    print(caplog.text.strip())
    assert "out of device memory on a forward pass of 8 images" in caplog.text
    np.testing.assert_array_equal(squeezed.rows, reference.rows)
    np.testing.assert_allclose(squeezed.features, reference.features, rtol=2e-2, atol=2e-2)


# Last: a cold torch.compile is the slowest step, and a time limit should cut it rather than the rest.
def test_compiled_features_match_eager_on_cuda(tmp_path: Path, rng: np.random.Generator) -> None:
    torch._dynamo.reset()
    index = _jpegs(tmp_path, rng, count=20)  # 22 rows: batches of 8, 8 and 6 (padded)
    backbone = _backbone()
    common = {"batch_size": 8, "device": "cuda", "progress": False, "num_workers": 2}
    eager = extract_features(backbone, index, settings=ExtractionSettings(**common))  # type: ignore[arg-type]
    compiled = extract_features(backbone, index, settings=ExtractionSettings(compile=True, **common))  # type: ignore[arg-type]
    np.testing.assert_array_equal(compiled.rows, eager.rows)
    rel = np.abs(compiled.features - eager.features).max() / np.abs(eager.features).max()
    print(f"\ncompile vs eager (bf16): max rel diff {rel:.2e}")
    assert rel < 2e-2  # bf16 rounding differs with fused kernels
