"""Ensembles: soft/hard vote and stacking (heads/ensemble.py), row alignment of several caches
(cache/alignment.py) and the use case with its model file (ensembling.py, api.evaluate)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.estimator_checks import parametrize_with_checks

from featurekit import api
from featurekit.cache import RowTable, load_features, write_cache
from featurekit.cache.alignment import align_feature_sets
from featurekit.errors import InvalidInputError, ProvenanceMismatchError
from featurekit.evaluation import split_train_test
from featurekit.heads import make_head
from featurekit.heads.ensemble import TIE_NUDGE, EnsembleHead
from featurekit.persist import load_model, save_model

CLASSES = ["cat", "dog", "owl"]


# --------------------------------------------------------------------------- helpers


class ColumnVoter(ClassifierMixin, BaseEstimator):
    """Predicts the class written in feature column `column`, with probability `confidence`."""

    def __init__(self, *, column: int = 0, confidence: float = 0.8) -> None:
        self.column = column
        self.confidence = confidence

    def fit(self, X: Any, y: Any) -> ColumnVoter:
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        k = len(self.classes_)
        proba = np.full((len(X), k), (1 - self.confidence) / (k - 1))
        proba[np.arange(len(X)), X[:, self.column].astype(int)] = self.confidence
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


def _voter_data(rng: np.random.Generator, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Column j holds the true class with probability 0.9, 0.7, 0.5 (j = 0, 1, 2), else another class."""
    y = rng.integers(0, 3, size=n)
    X = np.zeros((n, 3))
    for j, right in enumerate((0.9, 0.7, 0.5)):
        wrong = (y + rng.integers(1, 3, size=n)) % 3
        X[:, j] = np.where(rng.random(n) < right, y, wrong)
    return X, y


def _digest(i: int) -> str:
    return hashlib.sha256(f"image-{i}".encode()).hexdigest()


def _provenance(backbone: str, img_size: int = 32) -> dict[str, Any]:
    return {"backbone": backbone, "preprocess": {"img_size": img_size}, "precision": "float32"}


def _latent(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    centres = rng.normal(size=(3, 6)) * 1.5
    return centres[y] + rng.normal(size=(n, 6)), y


def _write(
    path: Path,
    z: np.ndarray,
    y: np.ndarray,
    *,
    backbone: str,
    dim: int,
    order: np.ndarray | None = None,
    img_size: int = 32,
    seed: int = 1,
) -> Path:
    """A cache whose row i (image i) holds a fixed projection of z[i]; rows stored in `order`."""
    rng = np.random.default_rng(seed)
    X = z @ rng.normal(size=(z.shape[1], dim)) + 0.5 * rng.normal(size=(len(z), dim))
    order = np.arange(len(z)) if order is None else np.asarray(order)
    rows = RowTable(
        paths=[f"{CLASSES[y[i]]}/{i:03d}.jpg" for i in order],
        content_hashes=[_digest(i) for i in order],
        class_names=list(CLASSES),
        labels=y[order].astype(np.int64),
    )
    return write_cache(path, features=X[order], rows=rows, provenance=_provenance(backbone, img_size))


@pytest.fixture
def two_caches(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Cache A in image order, cache B (another backbone) of the same images shuffled, and B in order."""
    z, y = _latent()
    a = _write(tmp_path / "a.h5", z, y, backbone="bb_a", dim=8, seed=1)
    shuffled = np.random.default_rng(5).permutation(len(y))
    b = _write(tmp_path / "b.h5", z, y, backbone="bb_b", dim=5, order=shuffled, seed=2)
    b_ordered = _write(tmp_path / "b_ordered.h5", z, y, backbone="bb_b", dim=5, seed=2)
    return a, b, b_ordered


# --------------------------------------------------------------------------- the estimator


@parametrize_with_checks(
    [
        EnsembleHead(method="hard"),
        EnsembleHead(method="stack"),
        EnsembleHead(method="hard", tie_breaker="proba"),
    ]
)
def test_sklearn_estimator_contract_of_each_method(estimator: Any, check: Any) -> None:
    check(estimator)  # method="soft" (the default) runs in test_heads_common.py like every registered head


def test_soft_vote_is_the_weighted_mean_of_member_probabilities() -> None:
    X, y = make_classification(n_samples=200, n_features=10, n_informative=5, n_classes=3, random_state=0)
    ens = EnsembleHead(estimators=["logreg", "knn"], method="soft", weights=[1, 3]).fit(X, y)
    p_logreg = make_head("logreg").fit(X, y).predict_proba(X[:40])
    p_knn = make_head("knn").fit(X, y).predict_proba(X[:40])
    expected = (1 * p_logreg + 3 * p_knn) / 4
    np.testing.assert_allclose(ens.predict_proba(X[:40]), expected, rtol=1e-12)
    np.testing.assert_array_equal(ens.predict(X[:40]), expected.argmax(axis=1))
    assert not np.allclose(expected, (p_logreg + p_knn) / 2)  # the weights mattered


def test_hard_vote_three_way_tie_goes_to_the_strongest_member(rng: np.random.Generator) -> None:
    X, y = _voter_data(rng)
    # Members listed weakest first: the strongest (column 0, right 90 % of the time) is the last one.
    members = [ColumnVoter(column=2), ColumnVoter(column=1), ColumnVoter(column=0)]
    tie = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0]], dtype=float)  # three members, three classes
    strongest = EnsembleHead(estimators=members, method="hard", tie_breaker="strongest").fit(X, y)
    assert np.argmax(strongest.member_scores_) == 2
    assert strongest.member_scores_[2] > 0.8 and strongest.member_scores_[0] < 0.6
    np.testing.assert_array_equal(strongest.predict(tie), [0, 2, 1])  # column 0's class
    first = EnsembleHead(estimators=members, method="hard", tie_breaker="first").fit(X, y)
    np.testing.assert_array_equal(first.predict(tie), [2, 1, 0])  # column 2's (first member) class
    # Vote shares: 1/3 each, the tie-breaker's class nudged so that argmax agrees with predict.
    proba = strongest.predict_proba(tie)
    np.testing.assert_array_equal(proba.argmax(axis=1), strongest.predict(tie))
    np.testing.assert_allclose(proba, 1 / 3, atol=2 * TIE_NUDGE)
    # A majority needs no tie-breaker: two members agree against the strongest one.
    majority = np.array([[0, 1, 1]], dtype=float)
    assert strongest.predict(majority)[0] == 1
    np.testing.assert_allclose(strongest.predict_proba(majority), [[1 / 3, 2 / 3, 0]])


def test_hard_vote_proba_tie_breaker_and_weights(rng: np.random.Generator) -> None:
    X, y = _voter_data(rng)
    members = [ColumnVoter(column=0, confidence=0.5), ColumnVoter(column=1, confidence=0.9)]
    tie = np.array([[0, 2, 1]], dtype=float)  # member 1 says 0, member 2 says 2
    by_proba = EnsembleHead(estimators=members, method="hard", tie_breaker="proba").fit(X, y)
    assert by_proba.member_scores_ is None  # no out-of-fold fits needed
    assert by_proba.predict(tie)[0] == 2  # 0.9 beats 0.5
    weighted = EnsembleHead(estimators=members, method="hard", weights=[2, 1], tie_breaker="proba").fit(X, y)
    assert weighted.predict(tie)[0] == 0  # no tie: the heavier vote wins


def test_stacking_fits_the_meta_learner_on_out_of_fold_probabilities_only() -> None:
    X, y = make_classification(
        n_samples=300, n_features=20, n_informative=4, n_redundant=0, flip_y=0.1, n_classes=3, random_state=3
    )
    members = [make_head("logreg"), make_head("knn", n_neighbors=1)]  # 1-NN memorises its training rows
    ens = EnsembleHead(estimators=members, method="stack", cv=5, random_state=0).fit(X, y)

    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    oof = [cross_val_predict(m, X, y, cv=cv, method="predict_proba") for m in members]
    meta = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(np.hstack(oof), y)
    np.testing.assert_allclose(ens.meta_.coef_, meta.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ens.member_scores_, [np.mean(p.argmax(1) == y) for p in oof])

    # The leak it avoids: on in-sample predictions 1-NN is always right and takes over the meta-learner.
    in_sample = [m.fit(X, y).predict_proba(X) for m in members]
    leaky = LogisticRegression(C=1.0, max_iter=1000).fit(np.hstack(in_sample), y)

    def share_of_knn(coef: np.ndarray) -> float:
        return float(np.abs(coef[:, 3:]).sum() / np.abs(coef).sum())

    assert share_of_knn(leaky.coef_) > 0.6
    assert share_of_knn(ens.meta_.coef_) < 0.5
    assert ens.member_scores_[0] > ens.member_scores_[1]  # logreg is the better member out of fold


def test_columns_give_each_member_its_block() -> None:
    X, y = make_classification(n_samples=120, n_features=9, n_informative=4, random_state=0)
    ens = EnsembleHead(estimators=["logreg", "logreg"], columns=[(0, 4), (4, 9)]).fit(X, y)
    expected = (
        make_head("logreg").fit(X[:, :4], y).predict_proba(X[:, :4])
        + make_head("logreg").fit(X[:, 4:], y).predict_proba(X[:, 4:])
    ) / 2
    np.testing.assert_allclose(ens.predict_proba(X), expected, rtol=1e-12)
    assert ens.estimators_[1].n_features_in_ == 5


@pytest.mark.parametrize(
    ("params", "y_shape", "match"),
    [
        ({"weights": [1, 2, 3]}, None, r"weights must give one number per member \(2: logreg, knn\)"),
        ({"weights": [1, -1]}, None, "non-negative"),
        ({"tie_breaker": "coin"}, None, "tie_breaker must be one of strongest, first, proba"),
        ({"method": "stack", "weights": [1, 2]}, None, "stacking learns the members' weights"),
        ({"columns": [(0, 3), (3, 99)]}, None, r"column range \(3, 99\)"),
        ({"estimators": ["logreg", 3]}, None, "neither a head name nor an estimator"),
        ({}, (60, 3), "single-label y"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, Any], y_shape: Any, match: str) -> None:
    X, y = make_classification(n_samples=60, n_features=6, random_state=0)
    target = np.zeros(y_shape, dtype=int) + np.eye(3, dtype=int)[y] if y_shape else y
    with pytest.raises(InvalidInputError, match=match):
        EnsembleHead(**params).fit(X, target)


def test_fitted_ensemble_round_trips_through_a_safe_model_file(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=150, n_features=8, n_informative=4, n_classes=3, random_state=0)
    for method in ("soft", "hard", "stack"):
        ens = EnsembleHead(
            estimators=["logreg", "knn", "linear-svm"], method=method, columns=[(0, 4), (4, 8), (0, 8)]
        ).fit(X, y)
        loaded = load_model(save_model(tmp_path / f"{method}.skops", ens, metadata={"feature_dim": 8}))
        np.testing.assert_array_equal(loaded.estimator.predict_proba(X), ens.predict_proba(X))
        np.testing.assert_array_equal(loaded.estimator.predict(X), ens.predict(X))


# --------------------------------------------------------------------------- alignment


def test_alignment_matches_rows_by_identity_not_position(two_caches: tuple[Path, Path, Path]) -> None:
    a, b, b_ordered = two_caches
    fa, fb, fb_ordered = (load_features(p) for p in (a, b, b_ordered))
    assert fb.rows.paths != fb_ordered.rows.paths  # stored in another order
    aligned = align_feature_sets([fa, fb], names=["a", "b"])
    np.testing.assert_array_equal(aligned[1].X, fb_ordered.X)
    np.testing.assert_array_equal(aligned[1].y, fa.y)
    assert aligned[1].rows.paths == fa.rows.paths


def test_rows_missing_from_a_cache_are_named(tmp_path: Path) -> None:
    z, y = _latent()
    a = load_features(_write(tmp_path / "a.h5", z, y, backbone="bb_a", dim=4))
    fewer = load_features(_write(tmp_path / "b.h5", z, y, backbone="bb_b", dim=4, order=np.arange(3, 150)))
    with pytest.raises(InvalidInputError, match=r"3 of the 150 rows of a are missing from b \(cat/000.jpg, "):
        align_feature_sets([a, fewer], names=["a", "b"])
    with pytest.raises(
        InvalidInputError, match=r"3 rows of a are missing from b \(cat/000.jpg, cat/001.jpg, cat/002.jpg\)"
    ):
        align_feature_sets([fewer, a], names=["b", "a"])


def test_a_cache_with_other_labels_is_refused(tmp_path: Path) -> None:
    z, y = _latent()
    a = load_features(_write(tmp_path / "a.h5", z, y, backbone="bb_a", dim=4))
    other = y.copy()
    other[7] = (other[7] + 1) % 3
    b = load_features(_write(tmp_path / "b.h5", z, other, backbone="bb_b", dim=4))
    with pytest.raises(InvalidInputError, match=r"1 rows have other labels in b than in a \(cat/007.jpg\)"):
        align_feature_sets([a, b], names=["a", "b"])


# --------------------------------------------------------------------------- the use case


def test_late_fusion_does_not_depend_on_row_order(
    tmp_path: Path, two_caches: tuple[Path, Path, Path]
) -> None:
    a, b, b_ordered = two_caches
    common = {"heads": ["logreg", "knn"], "method": "soft", "reports_dir": tmp_path / "reports"}
    shuffled = api.ensemble([a, b], out=tmp_path / "m1.skops", **common)
    ordered = api.ensemble([a, b_ordered], out=tmp_path / "m2.skops", **common)
    assert list(shuffled.member_metrics) == ["logreg@bb_a", "knn@bb_a", "logreg@bb_b", "knn@bb_b"]
    assert shuffled.metrics == ordered.metrics
    assert shuffled.member_metrics == ordered.member_metrics
    assert shuffled.n_test == 30 and shuffled.metrics["n_samples"] == 30


def test_early_fusion_equals_one_head_on_the_concatenated_features(
    tmp_path: Path, two_caches: tuple[Path, Path, Path]
) -> None:
    a, b, b_ordered = two_caches
    report = api.ensemble(
        [a, b], heads=["logreg"], fusion="early", out=tmp_path / "early.skops", reports_dir=tmp_path
    )
    fa, fb = load_features(a), load_features(b_ordered)
    X = np.hstack([fa.X, fb.X])
    split = split_train_test(fa.y, test_size=0.2, random_state=0)
    head = make_head("logreg").fit(X[split.train], fa.y[split.train])
    model = load_model(report.model_path).estimator
    np.testing.assert_allclose(
        model.predict_proba(X[split.test]), head.predict_proba(X[split.test]), rtol=1e-10
    )
    assert report.metrics["accuracy"] == pytest.approx(
        np.mean(head.predict(X[split.test]) == fa.y[split.test])
    )
    assert list(report.member_metrics) == ["logreg@bb_a+bb_b"]


def test_saved_ensemble_is_evaluated_on_its_caches_in_any_order(
    tmp_path: Path, two_caches: tuple[Path, Path, Path]
) -> None:
    a, b, _ = two_caches
    report = api.ensemble(
        [a, b], heads=["logreg", "knn"], method="stack", out=tmp_path / "stack.skops", reports_dir=tmp_path
    )
    meta = load_model(report.model_path).metadata
    assert [c["feature_dim"] for c in meta["caches"]] == [8, 5]
    assert [c["provenance_key"] for c in meta["caches"]] == [load_features(p).provenance_key for p in (a, b)]
    assert meta["ensemble"]["method"] == "stack" and meta["feature_dim"] == 13
    for order in ([a, b], [b, a]):
        scored = api.evaluate(report.model_path, order)
        assert scored.n_rows == report.n_test
        assert scored.metrics == report.metrics
    assert api.evaluate(report.model_path, [a, b], rows="all").n_rows == 150
    with pytest.raises(InvalidInputError, match=r"fit on 2 caches \(bb_a, bb_b\); got 1"):
        api.evaluate(report.model_path, a)


def test_a_cache_made_another_way_is_refused(tmp_path: Path, two_caches: tuple[Path, Path, Path]) -> None:
    a, b, _ = two_caches
    report = api.ensemble([a, b], heads=["logreg"], out=tmp_path / "m.skops", reports_dir=tmp_path)
    z, y = _latent()
    bigger = _write(tmp_path / "b64.h5", z, y, backbone="bb_b", dim=5, img_size=64, seed=2)
    with pytest.raises(ProvenanceMismatchError, match=r"preprocess\.img_size: model 32, cache 64"):
        api.evaluate(report.model_path, [a, bigger])


def test_single_cache_ensemble_works_with_plain_evaluate(
    tmp_path: Path, two_caches: tuple[Path, Path, Path]
) -> None:
    a, _, _ = two_caches
    report = api.ensemble(
        [a],
        heads=["logreg", "knn", "linear-svm"],
        method="hard",
        tie_breaker="strongest",
        out=tmp_path / "hard.skops",
        reports_dir=tmp_path / "reports",
    )
    assert report.member_scores is not None and set(report.member_scores) == {"logreg", "knn", "linear-svm"}
    scored = api.evaluate(report.model_path, a)
    assert scored.metrics["accuracy"] == report.metrics["accuracy"] and scored.n_rows == report.n_test
    record = next((tmp_path / "reports" / "runs").glob("*ensemble*.json")).read_text()
    assert '"tie_breaker": "strongest"' in record and '"knn"' in record
    with pytest.raises(InvalidInputError, match="one head on one cache is not an ensemble"):
        api.ensemble([a], heads=["logreg"], reports_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="weights must give one number per member"):
        api.ensemble([a], heads=["logreg", "knn"], weights=[1.0], reports_dir=tmp_path)
