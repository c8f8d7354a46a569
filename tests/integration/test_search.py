"""`featurekit search` end to end on synthetic caches: outputs, no leakage, resume, seeds, variants."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from featurekit import api
from featurekit.cache import RowTable, load_features, write_cache
from featurekit.cli.main import main
from featurekit.errors import SearchInterrupted
from featurekit.evaluation import split_train_test
from featurekit.persist import load_model
from featurekit.search.runner import SearchContext
from featurekit.search.trial_log import TrialLog


def _cache(
    path: Path,
    *,
    X: np.ndarray,
    y: np.ndarray,
    class_names: list[str],
    layout: list[tuple[str, int, int]] | None = None,
    groups: np.ndarray | None = None,
) -> Path:
    rows = RowTable(
        paths=[f"img/{i:04d}.jpg" for i in range(len(y))],
        content_hashes=[f"{i:064x}" for i in range(len(y))],
        class_names=class_names,
        labels=y,
        groups=groups,
    )
    features: dict[str, object] = {"dim": int(X.shape[1])}
    if layout:
        features["layout"] = [{"name": n, "start": a, "stop": b} for n, a, b in layout]
    provenance = {"backbone": "synthetic", "features": features}
    return write_cache(path, features=X.astype(np.float32), rows=rows, provenance=provenance)


@pytest.fixture
def four_class(tmp_path: Path) -> Path:
    X, y = make_classification(
        n_samples=600, n_features=24, n_informative=10, n_classes=4, n_clusters_per_class=1,
        class_sep=0.7, flip_y=0.05, random_state=0,
    )  # fmt: skip
    return _cache(tmp_path / "four.h5", X=X, y=y.astype(np.int64), class_names=["a", "b", "c", "d"])


def _search(cache: Path, tmp_path: Path, **kw: object) -> api.SearchReport:
    kw.setdefault("reports_dir", tmp_path / "reports")
    kw.setdefault("device", "cpu")
    return api.search(cache, **kw)  # type: ignore[arg-type]


def test_cli_sweep_writes_model_trials_plot_and_record(
    four_class: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, reports = tmp_path / "best.skops", tmp_path / "reports"
    code = main(
        ["search", str(four_class), "--head", "logreg", "--out", str(out), "--reports-dir", str(reports)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "best C=" in printed and "15 trials fitted" in printed

    loaded = load_model(out)
    assert loaded.metadata["head"] == "logreg-torch"
    search = loaded.metadata["search"]
    best_C = search["seeds"][0]["best_params"]["C"]
    assert pytest.approx(best_C) == loaded.estimator.C
    # Refit on train + validation: every training row of fit's split, none of its test rows.
    features = load_features(four_class)
    assert features.y is not None
    split = split_train_test(features.y, test_size=0.2, random_state=0)
    assert loaded.metadata["train_rows"] == features.rows.subset(split.train).fingerprints()
    # ... and the head really was fitted on them: its scaler holds their mean.
    np.testing.assert_allclose(
        loaded.estimator.scaler_.mean_, features.X[split.train].astype(np.float64).mean(axis=0)
    )

    work = Path(search["work_dir"])
    with (work / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15 and {r["kind"] for r in rows} == {"sweep"}
    assert max(float(r["score"]) for r in rows) == pytest.approx(search["seeds"][0]["val_score"])
    assert (work / "search.png").stat().st_size > 1000
    records = list((reports / "runs").glob("*-search-*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["metrics"]["best_params"]["C"] == pytest.approx(best_C)

    # The saved head works with evaluate and predict like any fitted head.
    evaluated = api.evaluate(out, four_class)
    assert evaluated.metrics["accuracy"] == pytest.approx(search["seeds"][0]["test_metrics"]["accuracy"])


def test_same_seed_same_choice_and_both_solvers_agree(four_class: Path, tmp_path: Path) -> None:
    a = _search(four_class, tmp_path, work_dir=tmp_path / "a", out=tmp_path / "a.skops")
    b = _search(four_class, tmp_path, work_dir=tmp_path / "b", out=tmp_path / "b.skops")
    assert a.seeds[0].best_params == b.seeds[0].best_params
    assert a.seeds[0].val_score == b.seeds[0].val_score and a.seeds[0].test_score == b.seeds[0].test_score
    sk = _search(
        four_class, tmp_path, solver="scikit-learn", work_dir=tmp_path / "sk", out=tmp_path / "sk.skops"
    )
    assert sk.head == "logreg"
    # The same objective: the sweeps peak within one grid step of each other, test scores agree.
    ratio = sk.seeds[0].best_params["C"] / a.seeds[0].best_params["C"]
    assert 10 ** (-1 / 8) - 1e-9 <= ratio <= 10 ** (1 / 8) + 1e-9
    assert abs(sk.seeds[0].test_score - a.seeds[0].test_score) <= 0.02


def test_the_search_never_sees_the_test_rows(
    four_class: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test rows poisoned with NaN: every trial is unchanged; only the final scoring reads them."""
    features = load_features(four_class)
    assert features.y is not None
    split = split_train_test(features.y, test_size=0.2, random_state=0)
    poisoned_X = features.X.copy()
    poisoned_X[split.test] = np.nan
    poisoned = _cache(tmp_path / "poisoned.h5", X=poisoned_X, y=features.y, class_names=features.class_names)

    seen_by_test: list[int] = []

    def spy_test(
        self: SearchContext, head: object, X: np.ndarray, y: np.ndarray, **_: object
    ) -> tuple[float, dict]:
        seen_by_test.append(len(X))
        assert np.isnan(X).all()  # exactly the poisoned rows, and only here
        return 0.0, {}

    for head in ("logreg", "knn"):
        clean = _search(four_class, tmp_path, head=head, work_dir=tmp_path / f"clean-{head}", n_trials=9)
        with monkeypatch.context() as m:
            m.setattr(SearchContext, "test", spy_test)
            dirty = _search(poisoned, tmp_path, head=head, work_dir=tmp_path / f"dirty-{head}", n_trials=9)
        assert seen_by_test[-1] == len(split.test)
        clean_trials = [{k: v for k, v in e.items() if k != "seconds"} for e in _log(clean.work_dir)]
        dirty_trials = [{k: v for k, v in e.items() if k != "seconds"} for e in _log(dirty.work_dir)]
        assert clean_trials == dirty_trials
        assert clean.seeds[0].best_params == dirty.seeds[0].best_params


def _log(work: Path) -> list[dict]:
    lines = (work / "trials.jsonl").read_text().splitlines()[1:]
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("head", ["logreg", "knn"])
def test_an_interrupted_search_resumes_where_it_stopped(
    four_class: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: str
) -> None:
    full = _search(four_class, tmp_path, head=head, work_dir=tmp_path / "full", out=tmp_path / "full.skops")
    total = full.seeds[0].trials_fitted

    real_append = TrialLog.append
    calls = {"n": 0}

    def crash_after_five(self: TrialLog, entry: dict) -> None:
        real_append(self, entry)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt

    work = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        m.setattr(TrialLog, "append", crash_after_five)
        with pytest.raises(SearchInterrupted, match=r"5 finished trials.*run the same command again"):
            _search(four_class, tmp_path, head=head, work_dir=work)
    resumed = _search(four_class, tmp_path, head=head, work_dir=work, out=tmp_path / "resumed.skops")
    assert resumed.seeds[0].trials_resumed == 5
    assert resumed.seeds[0].trials_fitted == total - 5
    assert resumed.seeds[0].best_params == full.seeds[0].best_params
    assert resumed.seeds[0].val_score == full.seeds[0].val_score

    # Other settings in the same work dir are refused, not mixed in.
    with pytest.raises(Exception, match="other settings"):
        _search(four_class, tmp_path, head=head, work_dir=work, val_size=0.3)


def test_seeds_repeat_the_search_and_report_mean_and_std(four_class: Path, tmp_path: Path) -> None:
    report = _search(four_class, tmp_path, seeds=3)
    assert [o.seed for o in report.seeds] == [0, 1, 2]
    assert len({o.validation_split for o in report.seeds}) == 3  # three different validation splits
    tests = [o.test_score for o in report.seeds]
    assert report.summary["test_score"]["mean"] == pytest.approx(np.mean(tests))
    assert report.summary["test_score"]["std"] == pytest.approx(np.std(tests, ddof=1))
    assert "log10_C" in report.summary


def test_halving_searches_the_cached_variant(tmp_path: Path) -> None:
    """Block 'good' carries the signal, block 'noise' does not: the search must pick a variant with it."""
    rng = np.random.default_rng(0)
    X_good, y = make_classification(n_samples=500, n_features=8, n_informative=6, n_classes=3,
                                    n_clusters_per_class=1, random_state=1)  # fmt: skip
    X = np.hstack([X_good, rng.normal(size=(500, 8))])
    cache = _cache(tmp_path / "blocks.h5", X=X, y=y.astype(np.int64), class_names=["x", "y", "z"],
                   layout=[("good", 0, 8), ("noise", 8, 16)])  # fmt: skip
    report = _search(cache, tmp_path, head="knn", n_trials=12, out=tmp_path / "knn.skops")
    assert report.strategy == "halving"
    assert report.seeds[0].best_variant in ("good", "all")
    trials = _log(report.work_dir)
    assert {e["variant"] for e in trials} == {"good", "noise", "all"}
    # Trial 0 is what `fit` would use: the head's defaults on the whole cache.
    assert trials[0]["params"] == {"n_neighbors": 20, "weights": "distance"} and trials[0]["variant"] == "all"
    loaded = load_model(report.model_path)
    expected = ["good"] if report.seeds[0].best_variant == "good" else None
    assert loaded.metadata["feature_blocks"] == expected
    assert api.evaluate(report.model_path, cache).metrics["accuracy"] == pytest.approx(
        report.seeds[0].test_metrics["accuracy"]
    )
    # --features limits the variants to the named blocks.
    only = _search(cache, tmp_path, head="knn", n_trials=4, blocks=["noise"], work_dir=tmp_path / "only")
    assert {e["variant"] for e in _log(only.work_dir)} == {"noise"}


def test_multilabel_search_uses_map_and_a_multilabel_stratified_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 10))
    Y = (X[:, :4] + 0.7 * rng.normal(size=(400, 4)) > 0.8).astype(np.uint8)
    cache = _cache(tmp_path / "ml.h5", X=X, y=Y, class_names=["p", "q", "r", "s"])
    report = _search(cache, tmp_path, head="logreg")
    assert report.scoring == "average_precision"
    assert "multilabel-stratified" in report.seeds[0].validation_split
    assert report.seeds[0].test_metrics["average_precision"] > 0.7
    assert report.seeds[0].label_thresholds is not None and len(report.seeds[0].label_thresholds) == 4
    knn = _search(cache, tmp_path, head="knn", n_trials=6)
    assert knn.seeds[0].test_metrics["average_precision"] > 0.6


def test_group_aware_validation(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=300, n_features=10, random_state=2)
    groups = np.array([f"subject{i % 30}" for i in range(300)], dtype=object)
    cache = _cache(tmp_path / "g.h5", X=X, y=y.astype(np.int64), class_names=["no", "yes"], groups=groups)
    report = _search(cache, tmp_path, head="logreg", out=tmp_path / "binary.skops")
    assert "no group on both sides" in report.seeds[0].validation_split
    # Binary: the winner gets fit's operating point (EER on out-of-fold training scores), saved and
    # used by evaluate, which reproduces the search's test metrics.
    threshold = report.seeds[0].threshold
    assert threshold is not None and 0 < threshold < 1
    loaded = load_model(report.model_path)
    assert loaded.metadata["threshold"] == threshold and loaded.metadata["threshold_rule"] == "eer"
    evaluated = api.evaluate(report.model_path, cache)
    assert evaluated.metrics["hter"] == pytest.approx(report.seeds[0].test_metrics["hter"])


def test_clear_errors(four_class: Path, tmp_path: Path) -> None:
    from featurekit.errors import InvalidInputError, UnknownNameError

    with pytest.raises(InvalidInputError, match="C sweep is the protocol for logreg"):
        _search(four_class, tmp_path, head="knn", strategy="sweep")
    with pytest.raises(UnknownNameError, match="did you mean"):
        _search(four_class, tmp_path, head="logregg")
    with pytest.raises(InvalidInputError, match="cannot be maximised"):
        _search(four_class, tmp_path, scoring="log_loss")
    with pytest.raises(InvalidInputError, match="declares no search space"):
        _search(four_class, tmp_path, head="ensemble")


@pytest.mark.parametrize("head", ["mlp", "linear-svm"])
def test_a_search_read_back_from_its_log_writes_every_output(
    four_class: Path, tmp_path: Path, head: str
) -> None:
    """The second run fits nothing: every trial comes from the log, where mlp's `(512,)` is `[512]`;
    linear-svm's trial 0 has C="auto" beside the searched numbers, and C is one column of the table."""
    work, reports = tmp_path / "work", tmp_path / "reports"
    first = _search(four_class, tmp_path, head=head, n_trials=4, work_dir=work, out=tmp_path / "a.skops")
    again = _search(four_class, tmp_path, head=head, n_trials=4, work_dir=work, out=tmp_path / "b.skops")
    assert again.seeds[0].trials_fitted == 0
    assert again.seeds[0].trials_resumed == first.seeds[0].trials_fitted
    assert again.seeds[0].best_params == first.seeds[0].best_params
    assert (work / "search.png").stat().st_size > 1000
    assert len(list((reports / "runs").glob("*-search-*.json"))) == 2
    with (work / "trials.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header.count("C") == (1 if head == "linear-svm" else 0)


def test_unseeded_heads_get_the_search_seed_and_cpu_heads_say_device_is_unused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from featurekit.searching import _base_params

    for head in ("linear-svm", "lightgbm"):
        assert (
            _base_params(head, "halving", class_weight=None, device="auto", random_state=3)["random_state"]
            == 3
        )
    assert "random_state" not in _base_params(
        "mlp", "halving", class_weight=None, device="auto", random_state=3
    )
    with caplog.at_level("WARNING"):
        assert "device" not in _base_params(
            "knn", "halving", class_weight=None, device="cuda", random_state=0
        )
    assert "runs on the CPU only" in caplog.text


def test_a_search_over_two_caches_of_the_same_images_picks_the_informative_one(tmp_path: Path) -> None:
    """Two backbones' caches of the same rows, listed in either order: the cache is
    a variant like a block; the saved head names its cache's features and evaluates on that cache."""
    rng = np.random.default_rng(0)
    X_good, y = make_classification(n_samples=400, n_features=8, n_informative=6, n_classes=3,
                                    n_clusters_per_class=1, random_state=4)  # fmt: skip
    good = _cache(tmp_path / "good.h5", X=X_good, y=y.astype(np.int64), class_names=["x", "y", "z"])
    noise = _cache(tmp_path / "noise.h5", X=rng.normal(size=(400, 8)), y=y.astype(np.int64),
                   class_names=["x", "y", "z"])  # fmt: skip
    for caches in ([good, noise], [noise, good]):
        report = api.search(
            caches, head="knn", n_trials=6, device="cpu", reports_dir=tmp_path / "r", out=tmp_path / "m.skops"
        )
        assert {e["variant"] for e in _log(report.work_dir)} == {"good", "noise"}
        assert report.seeds[0].best_variant == "good"
        assert report.seeds[0].test_score > 0.6
        assert api.evaluate(report.model_path, good).metrics["accuracy"] == pytest.approx(
            report.seeds[0].test_metrics["accuracy"]
        )
