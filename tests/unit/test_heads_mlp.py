"""mlp: a PyTorch MLP head with early stopping; numpy state, deterministic with a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.model_selection import train_test_split

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.persist import load_model, save_model


@pytest.fixture(scope="module")
def xor_data() -> tuple[np.ndarray, np.ndarray]:
    """A problem no linear head can solve: the label is the XOR of two feature signs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 10)).astype(np.float32)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)
    return X, y


def test_learns_what_a_linear_head_cannot(xor_data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xor_data
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    mlp = make_head("mlp", hidden_layer_sizes=(64,), dropout=0.0, learning_rate=1e-2).fit(X_tr, y_tr)
    linear = make_head("logreg").fit(X_tr, y_tr)
    assert np.mean(mlp.predict(X_te) == y_te) >= 0.9
    assert np.mean(linear.predict(X_te) == y_te) <= 0.65
    np.testing.assert_allclose(mlp.predict_proba(X_te).sum(axis=1), 1.0, rtol=1e-6)


def test_early_stopping_stops_before_max_epochs_and_keeps_the_best_epoch() -> None:
    X, y = make_classification(n_samples=600, n_features=20, flip_y=0.3, random_state=1)
    head = make_head("mlp", hidden_layer_sizes=(256,), dropout=0.0, learning_rate=1e-2, max_epochs=300)
    head.fit(X, y)
    assert head.n_iter_ < 300
    assert head.best_validation_loss_ is not None and head.best_validation_loss_ < np.log(2)
    never = make_head("mlp", early_stopping=False, max_epochs=7).fit(X, y)
    assert never.n_iter_ == 7 and never.best_validation_loss_ is None


def test_same_seed_same_model_other_seed_other_model() -> None:
    X, y = make_classification(n_samples=300, n_features=10, random_state=2)
    a = make_head("mlp", random_state=3).fit(X, y).predict_proba(X)
    b = make_head("mlp", random_state=3).fit(X, y).predict_proba(X)
    c = make_head("mlp", random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_multilabel_gives_per_label_probabilities() -> None:
    X, Y = make_multilabel_classification(n_samples=400, n_features=20, n_classes=5, random_state=3)
    head = make_head("mlp", learning_rate=3e-3).fit(X, Y)
    proba = head.predict_proba(X)
    assert proba.shape == Y.shape and head.predict(X).dtype == np.int64
    assert np.mean(head.predict(X) == Y) >= 0.8


def test_round_trip_through_a_model_file(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=200, n_features=10, n_classes=3, n_informative=5, random_state=5)
    head = make_head("mlp").fit(X, y)
    loaded = load_model(save_model(tmp_path / "m.skops", head, metadata={"head": "mlp"})).estimator
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    assert all(isinstance(w, np.ndarray) for layer in loaded.layers_ for w in layer)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes must be a tuple of positive integers"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"validation_fraction": 1.5}, r"validation_fraction must be in \(0, 1\), got 1.5"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda or cuda:N, got 'tpu'"),
    ],
)
def test_invalid_hyperparameters_are_reported_at_fit(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with pytest.raises(InvalidInputError, match=message):
        make_head("mlp", **params).fit(X, y)
