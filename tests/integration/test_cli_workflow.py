"""The CLI end to end on timm's tiny test model: extract → reuse → fit → evaluate → predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.cli.main import main

BACKBONE = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]
COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}


def _image(rng: np.random.Generator, colour: tuple[int, int, int], size: int = 40) -> Image.Image:
    noise = rng.integers(-40, 40, size=(size, size, 3))
    pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture
def dataset(tmp_path: Path, rng: np.random.Generator) -> Path:
    root = tmp_path / "colours"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(12):
            _image(rng, colour).save(root / name / f"{i:02d}.jpg", quality=95)
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_extract_fit_evaluate_predict(
    tmp_path: Path, dataset: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "colours.h5"
    code, out, _ = _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "48", "--out", cache)
    assert code == 0
    assert "36 rows (36 extracted, 0 reused)" in out

    # The same command again reuses every row; a moved dataset too (rows are keyed by content).
    moved = dataset.rename(tmp_path / "moved")
    code, out, _ = _run(capsys, "extract", moved, *BACKBONE, "--img-size", "48", "--out", cache)
    assert code == 0
    assert "36 rows (0 extracted, 36 reused)" in out

    # Other preprocessing never silently reuses stale features: the differing field is named.
    code, _, err = _run(capsys, "extract", moved, *BACKBONE, "--img-size", "64", "--out", cache)
    assert code == 1
    assert "preprocess.img_size" in err and "--overwrite" in err

    model = tmp_path / "head.skops"
    reports = tmp_path / "reports"
    code, out, _ = _run(capsys, "fit", cache, "--head", "logreg", "--out", model, "--reports-dir", reports)
    assert code == 0, out
    assert "accuracy" in out and "balanced_accuracy" in out and "f1_macro" in out
    records = list((reports / "runs").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["cache_key"] and record["metrics"]["accuracy"] >= 0.8

    code, out, _ = _run(capsys, "evaluate", model, cache, "--json")
    assert code == 0
    metrics = json.loads(out)
    assert metrics["accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    assert {"accuracy", "balanced_accuracy", "f1_macro"} <= set(metrics)

    # predict on images the head has never seen, from a folder without classes
    new = tmp_path / "new"
    new.mkdir()
    for name in ("red", "blue"):
        _image(rng, COLOURS[name]).save(new / f"{name}.png")
    predictions = tmp_path / "pred.csv"
    code, _, _ = _run(capsys, "predict", model, new, "--out", predictions, "--workers", "0", "--no-progress")
    assert code == 0
    with predictions.open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["id"] for row in table] == ["blue.png", "red.png"]
    assert [row["prediction"] for row in table] == ["blue", "red"]
    probabilities = [float(table[0][f"p_{c}"]) for c in sorted(COLOURS)]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)


def test_broken_image_is_skipped_and_reported(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (dataset / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cache = tmp_path / "c.h5"
    code, out, _ = _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "32", "--out", cache)
    assert code == 0
    assert "36 rows" in out and "skipped 1 input" in out
    with (tmp_path / "c.h5.bad-inputs.csv").open() as handle:
        bad = list(csv.DictReader(handle))
    assert [(row["path"], row["stage"]) for row in bad] == [("red/broken.jpg", "decode")]


def test_csv_boxes_give_one_row_per_box(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    pixels = np.zeros((60, 80, 3), np.uint8)
    pixels[:, :40] = COLOURS["red"]
    pixels[:, 40:] = COLOURS["blue"]
    Image.fromarray(pixels).save(tmp_path / "two.png")
    (tmp_path / "boxes.csv").write_text(
        "path,x1,y1,x2,y2,label\ntwo.png,0,0,40,60,red\ntwo.png,40,0,80,60,blue\n"
    )
    cache = tmp_path / "boxes.h5"
    code, out, _ = _run(
        capsys, "extract", tmp_path / "boxes.csv", *BACKBONE, "--img-size", "32", "--out", cache
    )
    assert code == 0 and "2 rows" in out

    from featurekit.cache import load_features

    features = load_features(cache)
    np.testing.assert_array_equal(features.rows.boxes, [[0, 0, 40, 60], [40, 0, 80, 60]])
    assert not np.allclose(features.X[0], features.X[1])  # two different crops


def test_user_errors_are_one_line_with_exit_code_1(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _run(capsys, "extract", dataset, "--backbone", "resnet5O", "--weights", "random")
    assert code == 1
    assert "resnet50" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

    code, _, err = _run(capsys, "extract", tmp_path / "nowhere", *BACKBONE)
    assert code == 1 and "nowhere" in err

    cache = tmp_path / "c.h5"
    assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "32", "--out", cache)[0] == 0
    code, _, err = _run(capsys, "fit", cache, "--head", "logreq")
    assert code == 1 and "logreg" in err

    monkeypatch.setenv("FEATUREKIT_DEBUG", "1")
    from featurekit.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        main(["fit", str(cache), "--head", "logreq"])


def test_predict_validates_images_before_building_the_backbone(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, model = tmp_path / "c.h5", tmp_path / "head.skops"
    assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "32", "--out", cache)[0] == 0
    assert _run(capsys, "fit", cache, "--head", "logreg", "--out", model, "--reports-dir", tmp_path)[0] == 0
    (dataset / "loose.png").write_bytes((dataset / "red" / "00.jpg").read_bytes())  # folder + loose image

    import featurekit.backbones as backbones

    def no_backbone(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backbone was built before the images were validated")

    monkeypatch.setattr(backbones, "create_backbone", no_backbone)
    code, _, err = _run(capsys, "predict", model, dataset, "--out", tmp_path / "p.csv", "--no-progress")
    assert code == 1
    assert "cannot tell the layout" in err and "--source unlabelled" in err


def test_list_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", "backbones")
    assert code == 0
    assert "tf_efficientnet_lite0" in out and "offline" in out
    code, out, _ = _run(capsys, "list", "heads")
    assert code == 0 and "logreg" in out
