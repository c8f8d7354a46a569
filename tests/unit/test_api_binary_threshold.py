"""Binary heads: the decision threshold is chosen on training rows only, saved, and used when scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from featurekit import api
from featurekit.cache import RowTable, write_cache
from featurekit.evaluation import far_frr_hter
from featurekit.evaluation.operating_point import choose_threshold
from featurekit.heads import make_head
from featurekit.persist import load_model


@pytest.fixture
def imbalanced_cache(tmp_path: Path) -> Path:
    """A 7:1 binary task (the face study's ratio), with 40 subjects as groups."""
    X, y = make_classification(
        n_samples=400, n_features=16, n_informative=5, weights=[0.875], class_sep=0.8, random_state=0
    )
    rows = RowTable(
        paths=[f"{i:03d}.png" for i in range(len(y))],
        content_hashes=[f"{i:064x}" for i in range(len(y))],
        class_names=["no", "yes"],
        labels=y.astype(np.int64),
        groups=np.array([f"s{i % 40}" for i in range(len(y))], dtype=object),
    )
    provenance = {"backbone": "synthetic", "features": {"dim": 16}}
    return write_cache(
        tmp_path / "binary.h5", features=X.astype(np.float32), rows=rows, provenance=provenance
    )


def test_eer_threshold_from_training_rows_is_saved_and_used(imbalanced_cache: Path, tmp_path: Path) -> None:
    report = api.fit(imbalanced_cache, head="logreg", out=tmp_path / "m.skops", reports_dir=tmp_path)
    loaded = load_model(report.model_path)
    threshold = loaded.metadata["threshold"]
    assert loaded.metadata["threshold_rule"] == "eer"
    assert threshold is not None and 0 < threshold < 1

    # The same threshold comes out of the training rows alone (the test rows are never looked at).
    from featurekit.cache import load_features
    from featurekit.evaluation import split_train_test

    features = load_features(imbalanced_cache)
    assert features.y is not None and features.groups is not None
    split = split_train_test(features.y, groups=features.groups, test_size=0.2, random_state=0)
    again = choose_threshold(
        make_head("logreg"),
        features.X[split.train],
        features.y[split.train],
        rule="eer",
        groups=features.groups[split.train],
    )
    assert again == pytest.approx(threshold)

    # Metrics are scored at that threshold, and evaluate reproduces them from the model file.
    test = features.subset(split.test)
    scores = loaded.estimator.predict_proba(test.X)[:, 1]
    far, frr, hter = far_frr_hter(test.y, scores, threshold)
    assert report.metrics["far"] == pytest.approx(far) and report.metrics["frr"] == pytest.approx(frr)
    assert report.metrics["hter"] == pytest.approx(hter)
    assert report.metrics["threshold"] == pytest.approx(threshold)
    assert report.metrics["accuracy"] == pytest.approx(np.mean((scores >= threshold) == test.y))
    evaluated = api.evaluate(report.model_path, imbalanced_cache).metrics
    assert evaluated["hter"] == pytest.approx(report.metrics["hter"])


def test_eer_threshold_balances_errors_better_than_argmax_on_imbalanced_data(
    imbalanced_cache: Path, tmp_path: Path
) -> None:
    eer = api.fit(imbalanced_cache, head="logreg", out=tmp_path / "a.skops", reports_dir=tmp_path).metrics
    argmax = api.fit(
        imbalanced_cache, head="logreg", out=tmp_path / "b.skops", reports_dir=tmp_path, threshold="argmax"
    ).metrics
    assert load_model(tmp_path / "b.skops").metadata["threshold"] is None
    # At 7:1 the argmax rule rejects too many positives; the EER point trades them against FAR.
    assert abs(eer["far"] - eer["frr"]) < abs(argmax["far"] - argmax["frr"])
    assert eer["balanced_accuracy"] > argmax["balanced_accuracy"]


def test_unknown_threshold_rule_is_refused(imbalanced_cache: Path, tmp_path: Path) -> None:
    from featurekit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="threshold rule 'best' is not one of eer, min-hter, argmax"):
        api.fit(
            imbalanced_cache, head="logreg", out=tmp_path / "m.skops", reports_dir=tmp_path, threshold="best"
        )
