"""`featurekit fit` / `evaluate --json` report every metric of issue 5 and save the figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import make_classification

from featurekit.cache import RowTable, write_cache
from featurekit.cli.main import main
from featurekit.persist import load_model


def _cache(tmp_path: Path, name: str, X: np.ndarray, labels: np.ndarray, classes: list[str]) -> Path:
    rows = RowTable(
        paths=[f"{i:04d}.png" for i in range(len(X))],
        content_hashes=[f"{i:064x}" for i in range(len(X))],
        class_names=classes,
        labels=labels,
    )
    return write_cache(
        tmp_path / f"{name}.h5",
        features=X.astype(np.float32),
        rows=rows,
        provenance={"backbone": "synthetic"},
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code = main([str(a) for a in argv])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_single_label_fit_reports_every_metric_and_saves_the_confusion_matrix_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = make_classification(
        n_samples=420, n_features=12, n_informative=8, n_classes=7, n_clusters_per_class=1, random_state=0
    )
    cache = _cache(tmp_path, "seven", X, y.astype(np.int64), [f"c{i}" for i in range(7)])
    out = _run(capsys, "fit", cache, "--out", tmp_path / "m.skops", "--reports-dir", tmp_path / "r")
    record_path = next((tmp_path / "r" / "runs").glob("*.json"))
    record = json.loads(record_path.read_text())
    metrics = record["metrics"]
    names = {"accuracy", "balanced_accuracy", "f1_macro", "top_5_accuracy", "log_loss", "ece"}
    assert names <= set(metrics)
    assert np.asarray(metrics["confusion_matrix"]).shape == (7, 7)
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["n_samples"] == 84
    png = record_path.with_name(record_path.stem + ".confusion_matrix.png")
    assert f"figure: {png}" in out
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) >= 300
    evaluated = json.loads(_run(capsys, "evaluate", tmp_path / "m.skops", cache, "--json"))
    assert evaluated["confusion_matrix"] == metrics["confusion_matrix"]
    assert names <= set(evaluated)


def test_multilabel_fit_and_evaluate_json_report_both_map_protocols_and_the_tail_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10))
    Y = (X[:, :4] + rng.normal(scale=0.8, size=(300, 4)) > 1.0).astype(np.uint8)
    cache = _cache(tmp_path, "ml", X, Y, ["w", "x", "y", "z"])
    model = tmp_path / "ml.skops"
    out = _run(capsys, "fit", cache, "--head", "knn", "--out", model, "--reports-dir", tmp_path / "r")
    assert "mAP protocols: average_precision = scikit-learn" in out
    record_path = next((tmp_path / "r" / "runs").glob("*.json"))
    assert record_path.with_name(record_path.stem + ".tail_accuracy.png").is_file()
    metrics = json.loads(_run(capsys, "evaluate", model, cache, "--json"))
    assert {"average_precision", "map_voc11", "protocols", "f1_micro", "f1_macro", "tail_accuracy"} <= set(
        metrics
    )
    assert "VOC2007 11-point" in metrics["protocols"]
    row = metrics["per_class"]["w"]
    assert {"average_precision", "ap_voc11", "threshold"} <= set(row)
    assert len(metrics["tail_accuracy"]) == 20 and metrics["tail_accuracy"][0]["threshold"] == 0.0
    saved = load_model(model).metadata["label_thresholds"]
    assert [metrics["per_class"][c]["threshold"] for c in "wxyz"] == pytest.approx(saved)
    half = json.loads(_run(capsys, "evaluate", model, cache, "--json", "--label-thresholds", "0.5"))
    assert {r["threshold"] for r in half["per_class"].values()} == {0.5}


def test_fit_resample_and_lightgbm_imbalance_flags_reach_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = make_classification(n_samples=240, n_features=8, weights=[0.85], random_state=0)
    cache = _cache(tmp_path, "bin", X, y.astype(np.int64), ["neg", "pos"])
    common = ["--reports-dir", tmp_path / "r", "--threshold", "argmax"]
    _run(capsys, "fit", cache, "--resample", "under", "--out", tmp_path / "u.skops", *common)
    meta = load_model(tmp_path / "u.skops").metadata
    n_pos = round(0.8 * int(np.sum(y == 1)))
    assert meta["resample"] == "under" and abs(meta["n_train_fitted"] - 2 * n_pos) <= 2
    _run(
        capsys,
        "fit",
        cache,
        "--head",
        "lightgbm",
        "--param",
        "is_unbalance=true",
        "--param",
        "n_estimators=20",
        "--out",
        tmp_path / "g.skops",
        *common,
    )
    loaded = load_model(tmp_path / "g.skops")
    assert loaded.metadata["params"]["is_unbalance"] is True
    assert loaded.estimator.estimator_.get_params()["is_unbalance"] is True
