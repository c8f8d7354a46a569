"""Multi-label heads: one threshold per label, chosen on out-of-fold training scores, saved, used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from featurekit import api
from featurekit.cache import RowTable, load_features, write_cache
from featurekit.errors import InvalidInputError
from featurekit.evaluation import compute_metrics, split_train_test
from featurekit.evaluation.operating_point import best_f1_threshold, choose_label_thresholds
from featurekit.heads import make_head
from featurekit.persist import load_model


def test_best_f1_threshold_by_hand() -> None:
    # scores .1 .2 .3 .4, truth 0 1 0 1: t=.4 -> F1 2/3; t=.2 -> P 2/3, R 1, F1 0.8 (best); t=.1 -> 2/3.
    # The threshold then moves halfway down to the next lower score: (.2 + .1) / 2.
    assert best_f1_threshold(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(0.15)
    # separable: every threshold in (0.2, 0.3] is perfect; the largest score with F1 1 is .3 -> .25
    assert best_f1_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(0.25)
    assert best_f1_threshold(np.array([0, 0]), np.array([0.3, 0.9])) == 0.5  # constant label
    assert best_f1_threshold(np.array([1, 1]), np.array([0.3, 0.9])) == 0.5


def _rare_labels(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3 labels of 5-12 % prevalence, each from its own noisy direction: 0.5 is far too high for them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10))
    logits = X[:, :3] * 1.5 - np.array([3.0, 3.5, 2.5])
    Y = (rng.uniform(size=(n, 3)) < 1 / (1 + np.exp(-logits))).astype(np.uint8)
    return X.astype(np.float32), Y


@pytest.fixture
def multilabel_cache(tmp_path: Path) -> Path:
    X, Y = _rare_labels(600, 0)
    Y[:, 2] = 0
    Y[5, 2] = 1  # a label with a single positive row: too little to tune, it keeps 0.5
    rows = RowTable(
        paths=[f"{i:03d}.png" for i in range(len(Y))],
        content_hashes=[f"{i:064x}" for i in range(len(Y))],
        class_names=["p", "q", "r"],
        labels=Y,
    )
    return write_cache(tmp_path / "ml.h5", features=X, rows=rows, provenance={"backbone": "synthetic"})


def test_out_of_fold_thresholds_beat_one_half_on_new_rows() -> None:
    X, Y = _rare_labels(1200, 1)
    Xtr, Ytr, Xte, Yte = X[:800], Y[:800], X[800:], Y[800:]
    thresholds = choose_label_thresholds(make_head("logreg"), Xtr, Ytr, rule="f1")
    assert len(thresholds) == 3 and all(0 < t < 0.5 for t in thresholds)
    # Seeded folds: the same rows give the same thresholds; another seed gives other folds.
    assert choose_label_thresholds(make_head("logreg"), Xtr, Ytr, rule="f1") == thresholds
    assert choose_label_thresholds(make_head("logreg"), Xtr, Ytr, rule="f1", random_state=1) != thresholds
    proba = make_head("logreg").fit(Xtr, Ytr).predict_proba(Xte)
    tuned = f1_score(Yte, proba >= np.asarray(thresholds), average="macro")
    half = f1_score(Yte, proba >= 0.5, average="macro")
    assert tuned > half + 0.05
    assert choose_label_thresholds(make_head("logreg"), Xtr, Ytr, rule="0.5") == [0.5, 0.5, 0.5]


def test_bad_rule_and_too_few_rows_are_refused() -> None:
    X, Y = _rare_labels(20, 0)
    with pytest.raises(InvalidInputError, match=r"label threshold rule 'best' is not one of f1, 0\.5"):
        choose_label_thresholds(make_head("logreg"), X, Y, rule="best")
    with pytest.raises(InvalidInputError, match="needs at least 2 training rows"):
        choose_label_thresholds(make_head("logreg"), X[:1], Y[:1], rule="f1")


def test_fit_saves_per_label_thresholds_and_evaluate_and_predict_use_them(
    multilabel_cache: Path, tmp_path: Path
) -> None:
    report = api.fit(multilabel_cache, head="logreg", out=tmp_path / "m.skops", reports_dir=tmp_path)
    meta = load_model(report.model_path).metadata
    thresholds = meta["label_thresholds"]
    assert meta["label_threshold_rule"] == "f1" and len(thresholds) == 3
    assert thresholds[2] == 0.5  # one positive row: not tuned
    assert thresholds[0] != 0.5 and thresholds[1] != 0.5

    # The fit's metrics are scored at these thresholds, and say which threshold each label used.
    features = load_features(multilabel_cache)
    assert features.y is not None
    split = split_train_test(features.y, test_size=0.2, random_state=0)
    # chosen from the training rows alone, as choose_label_thresholds does on them
    train = split.train
    assert choose_label_thresholds(make_head("logreg"), features.X[train], features.y[train], rule="f1") == (
        pytest.approx(thresholds)
    )
    proba = load_model(report.model_path).estimator.predict_proba(features.X[split.test])
    expected = compute_metrics(
        features.y[split.test],
        proba=proba,
        y_pred=(proba >= np.asarray(thresholds)).astype(np.int64),
        class_names=["p", "q", "r"],
    )
    assert report.metrics["f1_macro"] == pytest.approx(expected["f1_macro"])
    assert report.metrics["per_class"]["p"]["threshold"] == pytest.approx(thresholds[0])

    saved = api.evaluate(report.model_path, multilabel_cache).metrics
    half = api.evaluate(report.model_path, multilabel_cache, label_thresholds="0.5").metrics
    assert saved["f1_macro"] == pytest.approx(report.metrics["f1_macro"])
    assert half["f1_macro"] < saved["f1_macro"]  # 0.5 misses most of these rare labels
    assert half["per_class"]["p"]["threshold"] == 0.5
    assert half["average_precision"] == saved["average_precision"]  # ranking metrics do not move

    assert api.label_cuts(meta) == thresholds
    assert api.label_cuts(meta, 0.3) == [0.3, 0.3, 0.3]
    assert api.label_cuts({"class_names": ["a", "b"]}) == [0.5, 0.5]  # a head saved without them


def test_fit_with_label_thresholds_half_saves_one_half(multilabel_cache: Path, tmp_path: Path) -> None:
    report = api.fit(
        multilabel_cache,
        head="knn",
        out=tmp_path / "k.skops",
        reports_dir=tmp_path,
        label_thresholds="0.5",
    )
    assert load_model(report.model_path).metadata["label_thresholds"] == [0.5, 0.5, 0.5]


def test_label_thresholds_are_refused_for_single_label_metrics() -> None:
    y = np.array([0, 1, 1, 0])
    with pytest.raises(InvalidInputError, match=r"label_thresholds .* apply to multi-label tasks"):
        compute_metrics(y, proba=None, y_pred=y, class_names=["a", "b"], label_thresholds=[0.5, 0.5])
