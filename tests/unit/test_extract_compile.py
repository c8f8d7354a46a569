"""--compile: one static-shape compilation per run (the last batch is padded), features as eager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from featurekit.backbones import Backbone, create_backbone
from featurekit.config import PreprocessOverrides
from featurekit.errors import InvalidInputError
from featurekit.extract import ExtractionSettings, extract_features
from featurekit.extract import compile as compile_module
from featurekit.images import SourceOptions, load_image_index
from featurekit.images.index import ImageIndex

# Inductor on the CPU reorders float32 sums (fused convolutions + batch norm): measured max abs
# difference 2.4e-7 on test_resnet features of magnitude ~1 (compile+run of one batch: 23 s cold,
# 2 s with inductor's on-disk cache warm, 2-core CPU).
INDUCTOR_ATOL = 1e-5


def _index(root: Path, rng: np.random.Generator, count: int) -> ImageIndex:
    (root / "a").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(root / "a" / f"{i}.png")
    return load_image_index(root, SourceOptions())


def _backbone() -> Backbone:
    return create_backbone("test_resnet", weights="random", overrides=PreprocessOverrides(img_size=32))


def _settings(**kw: Any) -> ExtractionSettings:
    return ExtractionSettings(batch_size=4, device="cpu", progress=False, num_workers=0, **kw)


def test_compiled_forward_sees_one_shape_and_pads_the_last_batch(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counting backend stands in for inductor: it records every graph torch.compile builds."""
    graphs: list[tuple[int, ...]] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        graphs.append(tuple(next(t for t in example_inputs if isinstance(t, torch.Tensor)).shape))
        return gm.forward

    monkeypatch.setattr(compile_module, "BACKEND", counting_backend)
    torch._dynamo.reset()
    index = _index(tmp_path, rng, 10)  # batches of 4, 4 and 2
    backbone = _backbone()
    eager = extract_features(backbone, index, settings=_settings())
    compiled = extract_features(backbone, index, settings=_settings(compile=True))
    torch._dynamo.reset()
    assert len(graphs) == 1 and graphs[0][0] == 4  # the batch of 2 was padded: no recompilation
    np.testing.assert_array_equal(compiled.rows, eager.rows)
    np.testing.assert_allclose(compiled.features, eager.features, rtol=0, atol=1e-6)


def test_unknown_compile_mode_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    index = _index(tmp_path, rng, 1)
    with pytest.raises(InvalidInputError, match="compile mode 'turbo' is not one of default"):
        extract_features(_backbone(), index, settings=_settings(compile=True, compile_mode="turbo"))


@pytest.mark.slow
def test_inductor_features_match_eager(tmp_path: Path, rng: np.random.Generator) -> None:
    """Real inductor on the CPU (needs a C compiler; ~25 s cold)."""
    torch._dynamo.reset()
    index = _index(tmp_path, rng, 6)
    backbone = _backbone()
    eager = extract_features(backbone, index, settings=_settings())
    compiled = extract_features(backbone, index, settings=_settings(compile=True))
    torch._dynamo.reset()
    np.testing.assert_array_equal(compiled.rows, eager.rows)
    np.testing.assert_allclose(compiled.features, eager.features, rtol=0, atol=INDUCTOR_ATOL)
