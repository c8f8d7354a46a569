"""--tta hflip: each row is the mean of the features of the image and of its mirror image; keyed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.cache import load_features
from featurekit.cli.main import main

ARGS = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]
# 32 px images at --img-size 32 and --crop-pct 1.0: the resize is the identity, so a mirrored file is
# exactly the mirrored tensor.
GEOMETRY = ["--img-size", "32", "--crop-pct", "1.0"]


def _folder(root: Path, images: list[np.ndarray]) -> Path:
    (root / "a").mkdir(parents=True)
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(root / "a" / f"{i}.png")
    return root


def test_hflip_tta_is_the_mean_over_image_and_mirror(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(4)]
    plain = _folder(tmp_path / "plain", images)
    mirrored = _folder(tmp_path / "mirrored", [img[:, ::-1] for img in images])

    assert (
        main(["extract", str(plain), *ARGS, *GEOMETRY, "--tta", "hflip", "--out", str(tmp_path / "t.h5")])
        == 0
    )
    assert main(["extract", str(plain), *ARGS, *GEOMETRY, "--out", str(tmp_path / "p.h5")]) == 0
    assert main(["extract", str(mirrored), *ARGS, *GEOMETRY, "--out", str(tmp_path / "m.h5")]) == 0
    tta, a, b = (load_features(tmp_path / f"{n}.h5") for n in ("t", "p", "m"))

    np.testing.assert_allclose(tta.X, (a.X + b.X) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.X, b.X)  # the mirror really changes the features
    assert tta.provenance["features"]["tta"] == "hflip"
    assert tta.provenance_key != a.provenance_key

    # Asking for other TTA on an existing cache never mixes rows: the differing field is named.
    capsys.readouterr()
    assert main(["extract", str(plain), *ARGS, *GEOMETRY, "--out", str(tmp_path / "t.h5")]) == 1
    assert "features.tta" in capsys.readouterr().err
