"""Every registered head survives save → load with identical outputs, in all three kinds of task."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.utils import get_tags

from featurekit.heads import HEADS, make_head
from featurekit.persist import load_model, save_model


def _task(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "multilabel":
        X, Y = make_multilabel_classification(n_samples=80, n_features=8, n_classes=4, random_state=0)
        return X.astype(np.float32), Y
    n_classes = 2 if kind == "binary" else 4
    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=5, n_classes=n_classes, random_state=0
    )
    return X.astype(np.float32), y


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("name", HEADS.names())
def test_save_load_gives_bit_identical_predictions(name: str, kind: str, tmp_path: Path) -> None:
    X, y = _task(kind)
    head = make_head(name)
    if kind == "multilabel" and not get_tags(head).classifier_tags.multi_label:
        pytest.skip(f"{name} does not take multi-hot labels (its tags say so)")
    head.fit(X, y)
    path = save_model(tmp_path / f"{name}.skops", head, metadata={"head": name})
    loaded = load_model(path)
    assert type(loaded.estimator) is type(head)
    assert loaded.estimator.get_params() == head.get_params()
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.estimator.predict(X), head.predict(X))
    np.testing.assert_array_equal(loaded.estimator.classes_, head.classes_)


def test_model_metadata_records_library_versions(tmp_path: Path) -> None:
    X, y = _task("binary")
    path = save_model(tmp_path / "m.skops", make_head("lightgbm", n_estimators=3).fit(X, y), metadata={})
    versions = load_model(path).metadata["versions"]
    assert {"featurekit", "python", "scikit-learn", "numpy", "scipy", "skops", "lightgbm"} <= set(versions)
    import lightgbm

    assert versions["lightgbm"] == lightgbm.__version__


def test_lightgbm_is_stored_as_its_text_model_in_the_skops_json(tmp_path: Path) -> None:
    X, y = _task("binary")
    head = make_head("lightgbm", n_estimators=3).fit(X, y)
    path = save_model(tmp_path / "m.skops", head, metadata={})
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        text = archive.read("schema.json").decode()
        members = archive.namelist()
    json.loads(text)  # the whole state is JSON (plus .npy arrays)
    # LightGBM's own text format (Booster.model_to_string) as a JSON string; no pickled blob anywhere.
    assert "version=v4" in text and "num_tree_per_iteration" in text and "Tree=0" in text
    assert not any(m.endswith((".pkl", ".pickle", ".joblib")) for m in members)
