"""save_model / load_model: round trip, atomic writes, refusal of pickle and unexpected types."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.datasets import make_classification, make_multilabel_classification

from featurekit.errors import InvalidInputError, PathNotFoundError, UnsafeModelFileError
from featurekit.heads import make_head
from featurekit.persist import FORMAT, load_model, save_model
from featurekit.persist import model_file as model_file_module

METADATA = {"feature_dim": 12, "class_names": ["a", "b", "c"], "provenance_key": "abc123"}


class MakesMarker:
    """Pickling it records a call that creates `path` when the pickle is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.path),))


class SetStateMarker:
    """Building it from a skops file (setstate) creates the marker."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["path"]).mkdir()
        self.__dict__.update(state)


class Sneaky(BaseEstimator):
    def predict(self, X: Any) -> Any:
        return X


@pytest.fixture
def fitted() -> tuple[Any, np.ndarray]:
    X, y = make_classification(n_samples=120, n_features=12, n_informative=6, n_classes=3, random_state=0)
    return make_head("logreg", C=0.3).fit(X, y), X


def test_round_trip_gives_identical_predictions_and_metadata(tmp_path: Path, fitted: Any) -> None:
    head, X = fitted
    path = save_model(tmp_path / "sub" / "head.skops", head, metadata=METADATA)
    assert path == tmp_path / "sub" / "head.skops"
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.estimator.predict(X), head.predict(X))
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), head.predict_proba(X))
    assert loaded.estimator.get_params() == head.get_params()
    md = loaded.metadata
    assert {k: md[k] for k in METADATA} == METADATA
    assert md["format"] == FORMAT and md["format_version"] == 1
    # the core libraries always; scipy, lightgbm and torch whenever installed (they are, here)
    assert set(md["versions"]) == {
        "featurekit",
        "python",
        "scikit-learn",
        "numpy",
        "skops",
        "scipy",
        "lightgbm",
        "torch",
    }
    assert md["created_at"].endswith("+00:00")


def test_round_trip_multilabel_with_constant_label(tmp_path: Path) -> None:
    X, Y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=0)
    Y[:, 2] = 0
    head = make_head("logreg").fit(X, Y)
    loaded = load_model(save_model(tmp_path / "ml.skops", head, metadata={"feature_dim": 6}))
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), head.predict_proba(X))


def test_numpy_metadata_values_are_converted(tmp_path: Path, fitted: Any) -> None:
    head, _ = fitted
    md = {"feature_dim": np.int64(12), "mean": np.array([0.5, 0.25]), "root": tmp_path}
    loaded = load_model(save_model(tmp_path / "m.skops", head, metadata=md))
    assert loaded.metadata["feature_dim"] == 12 and loaded.metadata["mean"] == [0.5, 0.25]
    assert loaded.metadata["root"] == str(tmp_path)


def test_bad_metadata_is_refused(tmp_path: Path, fitted: Any) -> None:
    head, _ = fitted
    with pytest.raises(InvalidInputError, match="must be JSON-serialisable: object is not"):
        save_model(tmp_path / "m.skops", head, metadata={"x": object()})
    with pytest.raises(InvalidInputError, match=r"keys \['format'\] are reserved"):
        save_model(tmp_path / "m.skops", head, metadata={"format": "mine"})
    with pytest.raises(InvalidInputError, match=r"not pickle; use a \.skops suffix"):
        save_model(tmp_path / "m.pkl", head, metadata={})
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_only_the_model_file(tmp_path: Path, fitted: Any) -> None:
    head, _ = fitted
    save_model(tmp_path / "m.skops", head, metadata={})
    save_model(tmp_path / "m.skops", head, metadata={"run": 2})  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["m.skops"]
    assert load_model(tmp_path / "m.skops").metadata["run"] == 2


def test_failed_write_keeps_old_file_and_removes_temp(
    tmp_path: Path, fitted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    head, _ = fitted
    path = save_model(tmp_path / "m.skops", head, metadata={"run": 1})
    before = path.read_bytes()

    class Broken:
        @staticmethod
        def dump(obj: Any, fh: Any) -> None:
            fh.write(b"half a file")
            raise OSError("disk full")

    monkeypatch.setattr(model_file_module, "_skops_io", lambda: Broken)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, head, metadata={"run": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.skops"]


@pytest.mark.parametrize("name", ["evil.pkl", "evil.joblib", "evil.bin"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(MakesMarker(marker)))
    with pytest.raises(
        UnsafeModelFileError, match="pickle files can run arbitrary code; pass --trust-pickle"
    ):
        load_model(path)
    assert not marker.exists()


def test_trust_pickle_really_runs_the_payload(tmp_path: Path) -> None:
    # Shows the refusal test above could fail: the same file, trusted, runs its payload.
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(MakesMarker(marker)))
    with pytest.raises(InvalidInputError, match="holds a NoneType, not a fitted estimator"):
        load_model(path, trust_pickle=True)
    assert marker.exists()


def test_trusted_joblib_file_loads(tmp_path: Path, fitted: Any) -> None:
    import joblib

    head, X = fitted
    joblib.dump(head, tmp_path / "mine.joblib")
    loaded = load_model(tmp_path / "mine.joblib", trust_pickle=True)
    np.testing.assert_array_equal(loaded.estimator.predict(X), head.predict(X))
    assert loaded.metadata == {}


def test_payload_smuggled_into_skops_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.skops"
    sio.dump({"format": FORMAT, "metadata": "{}", "estimator": SetStateMarker(marker)}, path)
    with pytest.raises(UnsafeModelFileError, match=r"types featurekit does not allow: .*SetStateMarker"):
        load_model(path)
    assert not marker.exists()
    # Loaded by trusting that type, the payload does run: the refusal is what kept it out.
    sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert marker.exists()


def test_unexpected_types_are_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.skops"
    sio.dump({"format": FORMAT, "metadata": "{}", "estimator": Sneaky(), "hook": os.system}, path)
    with pytest.raises(UnsafeModelFileError, match=r"do(es)? not allow: .*Sneaky.*system|system.*Sneaky"):
        load_model(path)


def test_spoofed_module_name_is_refused(tmp_path: Path, fitted: Any) -> None:
    head, _ = fitted
    good = save_model(tmp_path / "good.skops", head, metadata={})
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    schema = members["schema.json"].decode().replace('"featurekit.heads.logreg"', '"os"')
    members["schema.json"] = schema.encode()
    bad = tmp_path / "bad.skops"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(UnsafeModelFileError, match=r"os\.LogisticRegressionHead"):
        load_model(bad)


def test_not_a_model_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.skops"
    text.write_text("hello")
    with pytest.raises(InvalidInputError, match="is not a featurekit model file"):
        load_model(text)
    other = tmp_path / "other.skops"
    sio.dump({"weights": [1, 2, 3]}, other)
    with pytest.raises(InvalidInputError, match="no 'featurekit-model' header"):
        load_model(other)
    foreign_zip = tmp_path / "archive.skops"
    with zipfile.ZipFile(foreign_zip, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(InvalidInputError, match="is not a featurekit model file"):
        load_model(foreign_zip)
    with pytest.raises(PathNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.skops")


def test_newer_format_version_is_refused(tmp_path: Path, fitted: Any) -> None:
    head, _ = fitted
    path = tmp_path / "future.skops"
    metadata = json.dumps({"format": FORMAT, "format_version": 99})
    sio.dump({"format": FORMAT, "metadata": metadata, "estimator": head}, path)
    with pytest.raises(InvalidInputError, match="format version 99; this featurekit reads up to 1"):
        load_model(path)
