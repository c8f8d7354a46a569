"""The C sweep on real EfficientNet-Lite0 features of real CIFAR-10 images: both solvers, one answer.

Uses ../shared/data (skipped with a reason when it is absent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from featurekit import api
from featurekit.cache import load_features
from featurekit.evaluation import split_train_test
from featurekit.extract import ExtractionSettings
from featurekit.heads import make_head

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

PER_CLASS = 100


@pytest.fixture(scope="module")
def cifar_cache(
    tmp_path_factory: pytest.TempPathFactory, unpack_cifar_subset: Callable[[Path, int], Path]
) -> Path:
    data = unpack_cifar_subset(tmp_path_factory.mktemp("cifar_search"), PER_CLASS)
    root = data.parent
    report = api.extract(
        data,
        backbone="tf_efficientnet_lite0",
        out=root / "lite0.h5",
        settings=ExtractionSettings(progress=False, batch_size=32),
    )
    assert report.rows == 10 * PER_CLASS
    return report.cache_path


def test_both_solvers_choose_alike_and_agree_at_the_same_C(cifar_cache: Path, tmp_path: Path) -> None:
    ours = api.search(
        cifar_cache, head="logreg", device="cpu", reports_dir=tmp_path, out=tmp_path / "a.skops"
    )
    sk = api.search(
        cifar_cache, head="logreg", solver="scikit-learn", reports_dir=tmp_path, out=tmp_path / "b.skops"
    )
    C = ours.seeds[0].best_params["C"]
    assert 1e-5 < C < 1e2  # a real optimum inside the grid, not an edge
    ratio = sk.seeds[0].best_params["C"] / C
    assert 10 ** (-1 / 8) - 1e-9 <= ratio <= 10 ** (1 / 8) + 1e-9  # within one grid step
    assert ours.seeds[0].test_score > 0.6  # pretrained features: far above chance (0.1)

    # At the same C, scikit-learn's lbfgs and the saved featurekit head classify the held-out test
    # rows alike: the bar, 0.3 points, means equal accuracy on 200 rows (one image is 0.5).
    features = load_features(cifar_cache)
    assert features.y is not None
    split = split_train_test(features.y, test_size=0.2, random_state=0)
    reference = make_head("logreg", C=C).fit(features.X[split.train], features.y[split.train])
    from featurekit.persist import load_model

    saved = load_model(tmp_path / "a.skops").estimator
    X_test, y_test = features.X[split.test], features.y[split.test]
    disagree = int(np.sum(reference.predict(X_test) != saved.predict(X_test)))
    acc_ref = np.mean(reference.predict(X_test) == y_test)
    acc_ours = np.mean(saved.predict(X_test) == y_test)
    print(f"\nC={C:.3g}: test accuracy {acc_ours:.4f} (scikit-learn {acc_ref:.4f}), {disagree} differ")
    assert abs(acc_ref - acc_ours) <= 0.003
    assert disagree <= 2  # at most a swap of two near-ties
