"""`featurekit ensemble` end to end on timm's tiny test models (random weights): one cache, two backbones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.cache import load_features
from featurekit.cli.main import main
from featurekit.persist import load_model

RUNTIME = ["--weights", "random", "--no-progress", "--workers", "0", "--img-size", "32"]
COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}


def _image(rng: np.random.Generator, colour: tuple[int, int, int], size: int = 40) -> Image.Image:
    noise = rng.integers(-40, 40, size=(size, size, 3))
    return Image.fromarray(np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8))


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def caches(tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    root = tmp_path / "colours"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(12):
            _image(rng, colour).save(root / name / f"{i:02d}.jpg", quality=95)
    out = []
    for backbone in ("test_resnet", "test_efficientnet"):
        cache = tmp_path / f"{backbone}.h5"
        code, _, err = _run(capsys, "extract", root, "--backbone", backbone, *RUNTIME, "--out", cache)
        assert code == 0, err
        out.append(cache)
    return out[0], out[1]


def test_ensemble_of_heads_and_of_backbones(
    tmp_path: Path, caches: tuple[Path, Path], rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    resnet, effnet = caches
    reports = tmp_path / "reports"

    # Across heads on one cache: hard vote, strongest member on ties.
    hard = tmp_path / "hard.skops"
    code, out, err = _run(
        capsys, "ensemble", resnet, "--heads", "logreg,knn,linear-svm", "--method", "hard",
        "--tie-breaker", "strongest", "--out", hard, "--reports-dir", reports,
    )  # fmt: skip
    assert code == 0, err
    assert "scored on 8 held-out rows" in out and "out-of-fold training accuracy: logreg" in out
    table = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("logreg", "knn", "ens"))
    }
    assert {"logreg", "knn", "ensemble"} <= set(table)
    record = json.loads(next((reports / "runs").glob("*-ensemble-*.json")).read_text())
    assert record["config"]["tie_breaker"] == "strongest"
    assert set(record["metrics"]["members"]) == {"logreg", "knn", "linear-svm"}
    code, out, _ = _run(capsys, "evaluate", hard, resnet, "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(record["metrics"]["accuracy"])

    # A single-cache ensemble predicts new images like any head.
    new = tmp_path / "new"
    new.mkdir()
    for name in ("red", "blue"):
        _image(rng, COLOURS[name]).save(new / f"{name}.png")
    predictions = tmp_path / "pred.csv"
    code, _, err = _run(capsys, "predict", hard, new, "--out", predictions, "--workers", "0", "--no-progress")
    assert code == 0, err
    with predictions.open() as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["blue.png", "red.png"]

    # Across backbones: late fusion, stacking; evaluated on both caches in either order.
    stack = tmp_path / "stack.skops"
    code, out, err = _run(
        capsys, "ensemble", resnet, effnet, "--heads", "logreg", "--method", "stack", "--out", stack,
        "--reports-dir", reports, "--json",
    )  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    assert set(printed["members"]) == {"logreg@test_resnet", "logreg@test_efficientnet"}
    code, out, _ = _run(capsys, "evaluate", stack, effnet, resnet, "--json")
    assert code == 0 and json.loads(out) == printed["ensemble"]

    code, _, err = _run(capsys, "evaluate", stack, resnet)
    assert code == 1 and "fit on 2 caches (test_resnet, test_efficientnet); got 1" in err
    # predict rebuilds both backbones and feeds the stacked model their features side by side.
    predicted = tmp_path / "p2.csv"
    code, _, err = _run(
        capsys, "predict", stack, tmp_path / "colours", "--out", predicted, "--workers", "0", "--no-progress"
    )
    assert code == 0, err
    with predicted.open() as handle:
        table = list(csv.DictReader(handle))
    classes = load_features(resnet).class_names
    got = np.array([[float(row[f"p_{c}"]) for c in classes] for row in table])
    X = np.hstack([load_features(resnet).X, load_features(effnet).X])  # same folder, same row order
    np.testing.assert_allclose(got, load_model(stack).estimator.predict_proba(X), atol=2e-6)
    code, _, err = _run(capsys, "ensemble", resnet, "--heads", "logreg,knn", "--weights", "1,2,3")
    assert code == 1 and "weights must give one number per member (2: logreg, knn)" in err
