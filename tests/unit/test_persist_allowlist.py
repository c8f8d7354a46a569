"""Every registered head, fitted and dumped, needs only allow-listed types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.utils import get_tags

from featurekit.heads import HEADS, make_head
from featurekit.persist import BASE_ALLOWED_TYPES, allowed_types, load_model, save_model


def _fitted_variants(name: str) -> list[tuple[Any, np.ndarray]]:
    X, y = make_classification(n_samples=90, n_features=8, n_informative=4, n_classes=3, random_state=0)
    Xb, yb = make_classification(n_samples=60, n_features=8, random_state=1)
    variants = [(make_head(name).fit(X, y), X), (make_head(name).fit(Xb, yb), Xb)]
    head = make_head(name)
    if "standardize" in head.get_params():
        variants.append((make_head(name, standardize=False).fit(X, y), X))
    if get_tags(head).classifier_tags.multi_label:
        Xm, Ym = make_multilabel_classification(n_samples=60, n_features=8, n_classes=4, random_state=0)
        Ym[:, 0], Ym[:, 1] = 0, 1  # constant labels use other types than fitted ones
        variants.append((make_head(name).fit(Xm, Ym), Xm))
    return variants


@pytest.mark.parametrize("name", HEADS.names())
def test_registered_head_dumps_only_allowed_types(name: str, tmp_path: Path) -> None:
    allowed = allowed_types()
    for i, (head, X) in enumerate(_fitted_variants(name)):
        path = save_model(tmp_path / f"{i}.skops", head, metadata={})
        untrusted = set(sio.get_untrusted_types(file=path))
        assert untrusted <= allowed, f"add to the allow-list: {sorted(untrusted - allowed)}"
        np.testing.assert_array_equal(load_model(path).estimator.predict(X), head.predict(X))


def test_allow_list_is_exact_type_names() -> None:
    for name in allowed_types():
        module, _, qualname = name.rpartition(".")
        assert module and qualname and "*" not in name
    assert "featurekit.heads.logreg.LogisticRegressionHead" in allowed_types()
    assert allowed_types() >= BASE_ALLOWED_TYPES
    assert not any(t.startswith(("builtins.", "os.", "posix.", "subprocess.")) for t in allowed_types())
