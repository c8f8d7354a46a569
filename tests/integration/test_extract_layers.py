"""extract --layers/--pool: several pooled layers side by side in one pass, keyed, used by fit/predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.cache import load_features
from featurekit.cli.main import main

BACKBONE = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]


@pytest.fixture
def dataset(tmp_path: Path, rng: np.random.Generator) -> Path:
    root = tmp_path / "colours"
    for name, colour in {"red": (200, 30, 30), "blue": (30, 40, 200)}.items():
        (root / name).mkdir(parents=True)
        for i in range(10):
            noise = rng.integers(-40, 40, size=(40, 40, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_layers_and_pools_side_by_side(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, layered = tmp_path / "plain.h5", tmp_path / "layers.h5"
    assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "48", "--out", plain)[0] == 0
    code, out, err = _run(
        capsys, "extract", dataset, *BACKBONE, "--img-size", "48", "--out", layered,
        "--layers", "-1,-2", "--pool", "avg,max",
    )  # fmt: skip
    assert code == 0, err
    features = load_features(layered)
    blocks = features.provenance["features"]["layout"]
    assert [b["name"] for b in blocks] == ["layer-1.avg", "layer-1.max", "layer-2.avg", "layer-2.max"]
    assert blocks[-1]["stop"] == features.X.shape[1] == features.provenance["features"]["dim"]
    # ResNet's pre-logits embedding is the average-pooled last stage: block layer-1.avg must equal it.
    last_avg = features.X[:, blocks[0]["start"] : blocks[0]["stop"]]
    np.testing.assert_allclose(last_avg, load_features(plain).X, rtol=1e-5, atol=1e-5)
    last_max = features.X[:, blocks[1]["start"] : blocks[1]["stop"]]
    assert (last_max >= last_avg - 1e-6).all() and not np.allclose(last_max, last_avg)

    # Other layers are another provenance: never mixed into a cache made without them.
    code, _, err = _run(
        capsys, "extract", dataset, *BACKBONE, "--img-size", "48", "--out", plain, "--layers", "-1"
    )
    assert code == 1 and "features.layer" in err

    assert "layer-1.avg, layer-1.max, layer-2.avg, layer-2.max" in out  # extract names the blocks

    # One block chosen at fit time: the head sees only those columns, and evaluate/predict follow.
    one = tmp_path / "one.skops"
    code, out, _ = _run(
        capsys, "fit", layered, "--head", "logreg", "--features", "layer-2.max", "--out", one,
        "--reports-dir", tmp_path,
    )  # fmt: skip
    assert code == 0, out
    from featurekit.persist import load_model

    assert load_model(one).metadata["feature_dim"] == blocks[3]["stop"] - blocks[3]["start"]
    code, out, _ = _run(capsys, "evaluate", one, layered, "--json")
    assert code == 0 and json.loads(out)["accuracy"] >= 0.75
    code, _, err = _run(capsys, "fit", layered, "--features", "layer-2.mx", "--reports-dir", tmp_path)
    assert code == 1 and "did you mean: layer-2.max" in err
    code, _, err = _run(capsys, "fit", plain, "--features", "layer-1.avg", "--reports-dir", tmp_path)
    assert code == 1 and "--layers" in err

    # fit on the side-by-side features; predict rebuilds the same layers from the model's provenance.
    model = tmp_path / "head.skops"
    code, out, _ = _run(capsys, "fit", layered, "--head", "logreg", "--out", model, "--reports-dir", tmp_path)
    assert code == 0, out
    code, out, _ = _run(capsys, "evaluate", model, layered, "--json")
    assert code == 0 and json.loads(out)["accuracy"] >= 0.75
    new = tmp_path / "new"
    new.mkdir()
    (new / "a.png").write_bytes((dataset / "red" / "00.png").read_bytes())
    predictions = tmp_path / "p.csv"
    assert (
        _run(capsys, "predict", model, new, "--out", predictions, "--workers", "0", "--no-progress")[0] == 0
    )
    with predictions.open() as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["a.png"]
    code, _, _ = _run(capsys, "predict", one, new, "--out", predictions, "--workers", "0", "--no-progress")
    with predictions.open() as handle:
        assert code == 0 and [row["prediction"] for row in csv.DictReader(handle)] == ["red"]


@pytest.mark.parametrize(
    ("layers", "pool", "message"),
    [
        ("-9", "avg", "feature layers"),
        ("-1,-1", "avg", "at most once"),
        ("-1", "mean", "--pool"),
        ("x", "avg", "integers"),
        (",", "avg", "names no layer"),
        (None, "max", "--pool applies to --layers only"),
    ],
)
def test_bad_layer_requests_are_one_line_errors(
    tmp_path: Path,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
    layers: str | None,
    pool: str,
    message: str,
) -> None:
    layer_args = ["--layers", layers] if layers is not None else []
    code, _, err = _run(
        capsys, "extract", dataset, *BACKBONE, "--out", tmp_path / "c.h5", *layer_args, "--pool", pool
    )
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
