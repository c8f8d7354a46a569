"""Real weights make real features: EfficientNet-Lite0 on real CIFAR-10 images, offline.

A linear head on the pretrained features must score far above the same backbone with random
weights. Uses ../shared/data (skipped with a reason when it is absent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from featurekit import api
from featurekit.extract import ExtractionSettings

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

PER_CLASS = 40


@pytest.fixture(scope="module")
def cifar_subset(
    tmp_path_factory: pytest.TempPathFactory, unpack_cifar_subset: Callable[[Path, int], Path]
) -> Path:
    return unpack_cifar_subset(tmp_path_factory.mktemp("cifar"), PER_CLASS)


def _accuracy(data: Path, tmp_path: Path, weights: str | None) -> float:
    settings = ExtractionSettings(progress=False, batch_size=32)
    report = api.extract(
        data,
        backbone="tf_efficientnet_lite0",
        weights=weights,
        out=tmp_path / f"{weights}.h5",
        settings=settings,
    )
    assert report.rows == 10 * PER_CLASS
    fitted = api.fit(
        report.cache_path,
        head="logreg",
        out=tmp_path / f"{weights}.skops",
        reports_dir=tmp_path,
        test_size=0.25,
    )
    return float(fitted.metrics["accuracy"])


def test_pretrained_features_beat_random_weights(cifar_subset: Path, tmp_path: Path) -> None:
    pretrained = _accuracy(cifar_subset, tmp_path, None)
    random = _accuracy(cifar_subset, tmp_path, "random")
    # 10 classes: chance is 10 %. Measured here: pretrained ≈ 0.7, random ≈ 0.2.
    assert pretrained >= 0.55
    assert random <= 0.35
    assert pretrained - random >= 0.3
