"""What every registered head declares: its preprocessing (shown by `featurekit list heads`)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from featurekit.cli.main import main
from featurekit.heads import HEADS, PREPROCESSING_KINDS, list_heads, make_head


@pytest.mark.parametrize("name", HEADS.names())
def test_every_head_declares_its_preprocessing(name: str) -> None:
    info = next(i for i in list_heads() if i.name == name)
    assert info.preprocessing_kind in PREPROCESSING_KINDS, (
        f"{name}: set featurekit_preprocessing = 'KIND: note' with KIND one of {PREPROCESSING_KINDS}, "
        f"got {info.preprocessing!r}"
    )
    assert info.preprocessing.partition(":")[2].strip(), "say in a few words what it does"


def test_declared_preprocessing_matches_what_the_heads_do() -> None:
    kinds = {i.name: i.preprocessing_kind for i in list_heads()}
    assert kinds["logreg"] == kinds["logreg-torch"] == kinds["linear-svm"] == kinds["mlp"] == "standardize"
    assert kinds["knn"] == "l2-normalize" and kinds["lightgbm"] == "none"
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    rows = np.random.default_rng(0).uniform(0.1, 10, size=(len(X), 1))
    columns = np.random.default_rng(1).uniform(0.1, 10, size=(1, X.shape[1]))
    # l2-normalize: scaling each row changes nothing; standardize: scaling each column changes nothing.
    knn = make_head("knn").fit(X, y)
    np.testing.assert_allclose(make_head("knn").fit(X * rows, y).predict_proba(X), knn.predict_proba(X))
    logreg = make_head("logreg").fit(X, y)
    np.testing.assert_allclose(
        make_head("logreg").fit(X * columns, y).predict_proba(X * columns), logreg.predict_proba(X), atol=1e-6
    )


def test_list_heads_prints_preprocessing_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "heads", "logreg*"]) == 0
    out = capsys.readouterr().out
    assert "logreg " in out and "logreg-torch" in out and "knn" not in out
    assert "preprocessing: standardize: StandardScaler" in out
    assert main(["list", "heads", "nothing*"]) == 0
    assert "no head matches 'nothing*'" in capsys.readouterr().out
