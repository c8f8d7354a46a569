"""The batched sweep solver on CUDA: the same minimiser as on the CPU (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler

from featurekit.search.batched_logreg import BatchedLogisticSolver

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cuda_and_cpu_find_the_same_solutions() -> None:
    X, y = make_classification(
        n_samples=4000, n_features=64, n_informative=20, n_classes=10, n_clusters_per_class=1, random_state=0
    )
    X = StandardScaler().fit_transform(X)
    Cs = [1e-4, 1e-2, 1.0, 100.0]
    cpu = BatchedLogisticSolver(X, y, device="cpu", dtype="float64", tol=1e-6).solve(Cs)
    gpu = BatchedLogisticSolver(X, y, device="cuda", dtype="float32", tol=1e-4).solve(Cs)
    for a, b in zip(cpu, gpu, strict=True):
        pred_cpu = np.argmax(X @ a.coef.T + a.intercept, axis=1)
        pred_gpu = np.argmax(X @ b.coef.T + b.intercept, axis=1)
        assert np.mean(pred_cpu == pred_gpu) >= 0.995
        assert b.converged
