"""logreg-torch: the logreg objective solved with L-BFGS in PyTorch finds scikit-learn's solution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from featurekit.errors import InvalidInputError
from featurekit.heads import make_head
from featurekit.persist import load_model, save_model


@pytest.mark.parametrize(("n_classes", "C"), [(2, 0.05), (5, 0.01), (5, "auto")])
def test_same_solution_as_scikit_learn_lbfgs(n_classes: int, C: float | str) -> None:
    X, y = make_classification(
        n_samples=600, n_features=40, n_informative=12, n_classes=n_classes, random_state=1
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    ours = make_head("logreg-torch", C=C, device="cpu").fit(X_tr, y_tr)
    reference = make_head("logreg", C=C).fit(X_tr, y_tr)
    assert ours.C_ == reference.C_
    np.testing.assert_allclose(ours.predict_proba(X_te), reference.predict_proba(X_te), atol=2e-3)
    assert np.mean(ours.predict(X_te) == reference.predict(X_te)) >= 0.99
    # Accuracy equal up to one borderline test point (probabilities agree to 2e-3 above).
    accuracy_gap = abs(np.mean(ours.predict(X_te) == y_te) - np.mean(reference.predict(X_te) == y_te))
    assert accuracy_gap <= 1 / len(y_te) + 1e-12
    assert ours.predict_proba(X_te).shape == (len(X_te), n_classes)
    assert ours.n_iter_[0] > 0


def test_multilabel_matches_one_vs_rest_logreg() -> None:
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=4, random_state=2)
    ours = make_head("logreg-torch", C=0.1, device="cpu").fit(X, Y)
    reference = make_head("logreg", C=0.1).fit(X, Y)
    assert ours.predict(X).shape == Y.shape and ours.predict(X).dtype == np.int64
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=2e-3)


def test_balanced_class_weight_matches_logreg_and_helps_the_rare_class() -> None:
    X, y = make_classification(
        n_samples=2000, n_features=20, n_informative=4, weights=[0.93, 0.07], class_sep=0.6, random_state=4
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    plain = make_head("logreg-torch", device="cpu").fit(X_tr, y_tr)
    balanced = make_head("logreg-torch", class_weight="balanced", device="cpu").fit(X_tr, y_tr)
    reference = make_head("logreg", class_weight="balanced").fit(X_tr, y_tr)
    np.testing.assert_allclose(balanced.predict_proba(X_te), reference.predict_proba(X_te), atol=2e-3)
    gain = balanced_accuracy_score(y_te, balanced.predict(X_te)) - balanced_accuracy_score(
        y_te, plain.predict(X_te)
    )
    assert gain > 0.05


def test_round_trip_through_a_model_file_needs_no_torch_state(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=200, n_features=10, n_classes=3, n_informative=5, random_state=5)
    head = make_head("logreg-torch", device="cpu").fit(X, y)
    path = save_model(tmp_path / "m.skops", head, metadata={"head": "logreg-torch"})
    loaded = load_model(path).estimator
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    assert all(isinstance(v, np.ndarray) for v in (loaded.coef_, loaded.intercept_))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": 0}, "C must be a positive number or 'auto', got 0"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda or cuda:N, got 'tpu'"),
        ({"dtype": "float16"}, "dtype must be 'auto', 'float32' or 'float64', got 'float16'"),
        ({"max_iter": 0}, "max_iter must be a positive integer, got 0"),
    ],
)
def test_invalid_hyperparameters_are_reported_at_fit(params: dict[str, object], message: str) -> None:
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with pytest.raises(InvalidInputError, match=message):
        make_head("logreg-torch", **params).fit(X, y)


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        make_head("logreg-torch", device="cuda").fit(X, y)
