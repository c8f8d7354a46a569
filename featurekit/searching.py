"""`search`: tune a head on cached features without touching the test rows, then refit and save it.

The rows are split as `fit` splits them (same seed, same test rows: the split column, groups or a
stratified split), and the search sees only the training part. That part is split again into fit and
validation rows (`split_validation`: stratified, multilabel-stratified or group-aware); every
candidate is fitted on fit rows and scored on validation rows. The winner is refitted on all training
rows (fit + validation), scored once on the test rows, and saved like a `fit` model.

Strategies: "sweep", the linear-probe protocol for logreg (`search/c_sweep.py`), and "halving", random
search with successive halving over the head's declared space (`search/halving.py`). The cached
variant (cache, blocks) is part of both. `seeds` > 1 repeats the whole search with other validation
splits and candidate draws (the test rows stay the same) and reports mean ± std.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurekit.cache import FeatureSet, load_features
from featurekit.cache.alignment import align_feature_sets
from featurekit.errors import InvalidInputError, SearchInterrupted
from featurekit.evaluation import compute_metrics, expand_proba, split_train_test, split_validation
from featurekit.heads import HEADS, make_head
from featurekit.persist import save_model
from featurekit.reports import RunRecord, write_run_record
from featurekit.search.halving import (
    DEFAULT_FACTOR,
    DEFAULT_N_TRIALS,
    MIN_ROWS_PER_CLASS,
    VARIANT,
    Candidate,
    Trial,
    draw_candidates,
    interleaved_order,
    successive_halving,
)
from featurekit.search.linear_probe import SOLVERS, CTrial, make_sweep_solver, sweep_c
from featurekit.search.scoring import check_scoring, default_scoring, validation_score
from featurekit.search.trial_log import TrialLog
from featurekit.search.variants import FeatureVariant, VariantMatrices, feature_variants

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "sweep", "halving")
SWEEP_HEADS = ("logreg", "logreg-torch")
SEARCH_VERSION = 2  # 2: the head's defaults are trial 0 and reach the last rung


@dataclass(frozen=True)
class SeedOutcome:
    """The result of one whole search (one validation split and one set of candidate draws)."""

    seed: int
    best_params: dict[str, Any]
    best_variant: str
    val_score: float
    test_score: float
    test_metrics: dict[str, Any]
    validation_split: str
    trials_fitted: int  # fitted by this call
    trials_resumed: int  # read back from an interrupted earlier call
    search_seconds: float
    refit_seconds: float
    threshold: float | None = None  # binary: the operating point chosen on training rows
    label_thresholds: list[float] | None = None  # multi-label: one per label, from training rows


@dataclass(frozen=True)
class SearchReport:
    model_path: Path
    run_record_path: Path
    trials_csv: Path
    plot_path: Path | None
    work_dir: Path
    head: str  # the head saved in the model file
    strategy: str
    scoring: str
    seeds: list[SeedOutcome]
    summary: dict[str, dict[str, float]]  # metric -> {"mean", "std"} over seeds
    test_split: str
    seconds: float


def search(
    caches: Sequence[Path] | Path,
    *,
    head: str = "logreg",
    strategy: str = "auto",
    n_trials: int = DEFAULT_N_TRIALS,
    factor: int = DEFAULT_FACTOR,
    scoring: str | None = None,
    seeds: int = 1,
    test_size: float = 0.2,
    val_size: float = 0.2,
    random_state: int = 0,
    blocks: list[str] | None = None,
    solver: str = "featurekit",
    device: str = "auto",
    class_weight: str | None = None,
    out: Path | None = None,
    work_dir: Path | None = None,
    reports_dir: Path = Path("reports"),
    overwrite: bool = False,
    threshold: str = "eer",
    label_thresholds: str = "f1",
) -> SearchReport:
    """Search `head`'s hyperparameters (and the cached variant) on `caches`; save the refitted winner.

    `strategy` "auto" is the linear-probe sweep for logreg / logreg-torch and halving for every other
    head. `solver` ("featurekit" or "scikit-learn") fits the sweep. Trials are logged to
    `work_dir/trials.jsonl` as they finish, so the same call resumes an interrupted search.
    The winner's operating point is chosen as `fit` chooses it, on out-of-fold scores of the training
    rows: `threshold` ("eer", "min-hter", "argmax") for binary tasks, `label_thresholds` ("f1", "0.5")
    per label for multi-label tasks; the test metrics are scored at it and it is saved with the model.
    """
    started = time.perf_counter()
    paths = [Path(caches)] if isinstance(caches, str | Path) else [Path(c) for c in caches]
    strategy = _resolve_strategy(strategy, head)
    if solver not in SOLVERS:
        raise InvalidInputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if seeds < 1:
        raise InvalidInputError(f"seeds must be at least 1, got {seeds}")
    from featurekit.evaluation.operating_point import LABEL_THRESHOLD_RULES, THRESHOLD_RULES

    if threshold not in THRESHOLD_RULES:
        raise InvalidInputError(f"threshold must be one of {', '.join(THRESHOLD_RULES)}, got {threshold!r}")
    if label_thresholds not in LABEL_THRESHOLD_RULES:
        raise InvalidInputError(
            f"label_thresholds must be one of {', '.join(LABEL_THRESHOLD_RULES)}, got {label_thresholds!r}"
        )
    space = _declared_space(head) if strategy == "halving" else {}
    sets, names = _load_aligned(paths)
    reference = sets[0]
    y = reference.y
    assert y is not None  # _load_aligned keeps labelled rows only
    scoring = check_scoring(
        scoring or default_scoring(multilabel=reference.multilabel), multilabel=reference.multilabel
    )
    if class_weight not in (None, "balanced"):
        raise InvalidInputError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    split = split_train_test(
        y, groups=reference.groups, splits=reference.splits, test_size=test_size, random_state=random_state
    )
    variants = feature_variants(sets, names, blocks=blocks)
    matrices = VariantMatrices(sets, variants)
    saved_head = _saved_head(head, strategy, solver)
    base_params = _base_params(saved_head, strategy, class_weight=class_weight, device=device)
    settings = {
        # Bumped when the way trials are drawn or scored changes, so old logs are not mixed in.
        "search_version": SEARCH_VERSION,
        "head": head,
        "saved_head": saved_head,
        "strategy": strategy,
        "solver": solver if strategy == "sweep" else None,
        "n_trials": n_trials if strategy == "halving" else None,
        "factor": factor if strategy == "halving" else None,
        "space": {k: v.describe() for k, v in space.items()},
        "base_params": base_params,
        "scoring": scoring,
        "test_size": test_size,
        "val_size": val_size,
        "random_state": random_state,
        "variants": [v.name for v in variants],
        "cache_keys": [s.provenance_key for s in sets],  # not paths: a moved cache still resumes
        "rows": len(reference),
        "test_rows": len(split.test),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    work = Path(work_dir) if work_dir is not None else _default_work_dir(reports_dir, paths, head, key)
    log = TrialLog(work / "trials.jsonl", key=key, settings=settings, overwrite=overwrite)

    context = _Context(
        sets=sets,
        variants=variants,
        matrices=matrices,
        y=y,
        class_names=reference.class_names,
        multilabel=reference.multilabel,
        scoring=scoring,
        log=log,
        groups=reference.groups,
        threshold_rule=threshold,
        label_threshold_rule=label_thresholds,
    )
    try:
        outcomes, finals = _run_seeds(
            context,
            split=split,
            groups=reference.groups,
            seeds=seeds,
            random_state=random_state,
            val_size=val_size,
            strategy=strategy,
            head=saved_head,
            base_params=base_params,
            space=space,
            solver=solver,
            device=device,
            class_weight=class_weight,
            n_trials=n_trials,
            factor=factor,
        )
    except KeyboardInterrupt:
        raise SearchInterrupted(
            f"interrupted; {len(log.entries)} finished trials are logged in {log.path}; "
            "run the same command again to resume"
        ) from None

    final_head, final_variant = finals[0]
    cache_path = paths[final_variant.cache_index]
    features = sets[final_variant.cache_index]
    first = outcomes[0]
    model_path = (
        Path(out) if out is not None else reports_dir / "models" / f"{cache_path.stem}__{head}__search.skops"
    )
    summary = _summary(outcomes, strategy)
    search_record = {
        "strategy": strategy,
        "scoring": scoring,
        "work_dir": str(work),
        "search_key": key,
        "seeds": [asdict(o) for o in outcomes],
        "summary": summary,
    }
    metadata = {
        "head": saved_head,
        "params": final_head.get_params(),
        "feature_dim": int(matrices(final_variant.name).shape[1]),
        "feature_blocks": list(final_variant.blocks) if final_variant.blocks else None,
        "class_names": reference.class_names,
        "multilabel": reference.multilabel,
        "provenance_key": features.provenance_key,
        "provenance": features.provenance,
        "split": split.description,
        "train_rows": features.rows.subset(split.train).fingerprints(),
        "metrics": first.test_metrics,
        # Chosen like fit's, on out-of-fold scores of the training rows, for the winner.
        "threshold": first.threshold,
        "threshold_rule": threshold if context.binary else None,
        "label_thresholds": first.label_thresholds,
        "label_threshold_rule": label_thresholds if reference.multilabel else None,
        "resample": "none",
        "n_train_fitted": len(split.train),
        "search": search_record,
    }
    save_model(model_path, final_head, metadata=metadata)
    trials_csv = _write_trials_csv(work / "trials.csv", log.entries)
    plot = _plot(work / "search.png", log.entries, space, strategy, scoring, first, head=head)
    seconds = time.perf_counter() - started
    record = RunRecord.create(
        command="search",
        config={
            **settings,
            "caches": [str(p) for p in paths],
            "seeds": seeds,
            "blocks": blocks,
            "work_dir": str(work),
        },
        metrics={
            **first.test_metrics,
            "validation_score": first.val_score,
            "best_params": first.best_params,
            "best_variant": first.best_variant,
            "summary": summary,
            "seeds": [asdict(o) for o in outcomes],
        },
        timings={
            "search_seconds": sum(o.search_seconds for o in outcomes),
            "refit_seconds": sum(o.refit_seconds for o in outcomes),
            "total_seconds": seconds,
        },
        cache_key=features.provenance_key,
        cache_path=str(cache_path),
        model_path=str(model_path),
        split=f"{split.description}; {first.validation_split}",
    )
    record_path = write_run_record(record, reports_dir=reports_dir)
    return SearchReport(
        model_path=model_path,
        run_record_path=record_path,
        trials_csv=trials_csv,
        plot_path=plot,
        work_dir=work,
        head=saved_head,
        strategy=strategy,
        scoring=scoring,
        seeds=outcomes,
        summary=summary,
        test_split=split.description,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- set-up


@dataclass
class _Context:
    sets: list[FeatureSet]
    variants: list[FeatureVariant]
    matrices: VariantMatrices
    y: np.ndarray
    class_names: list[str]
    multilabel: bool
    scoring: str
    log: TrialLog
    groups: np.ndarray | None = None
    threshold_rule: str = "eer"
    label_threshold_rule: str = "f1"

    @property
    def binary(self) -> bool:
        return not self.multilabel and len(self.class_names) == 2

    def operating_point(
        self, head: Any, X: np.ndarray, rows: np.ndarray, *, seed: int
    ) -> tuple[float | None, list[float] | None]:
        """`fit`'s operating point for the winner, from out-of-fold scores of the training `rows` only:
        binary tasks a threshold (`threshold_rule`), multi-label tasks one per label."""
        from sklearn.base import clone

        from featurekit.evaluation.operating_point import choose_label_thresholds, choose_threshold

        groups = None if self.groups is None else self.groups[rows]
        y = self.y[rows]
        if self.binary:
            rule = self.threshold_rule
            return choose_threshold(clone(head), X, y, rule=rule, groups=groups, random_state=seed), None
        if self.multilabel:
            rule = self.label_threshold_rule
            return None, choose_label_thresholds(
                clone(head), X, y, rule=rule, groups=groups, random_state=seed
            )
        return None, None

    def score(self, head: Any, X: np.ndarray, y: np.ndarray) -> float:
        classes = None if self.multilabel else np.asarray(head.classes_)
        return validation_score(
            self.scoring, y, head.predict_proba(X), classes=classes, n_classes=len(self.class_names)
        )

    def test(
        self,
        head: Any,
        X: np.ndarray,
        y: np.ndarray,
        *,
        threshold: float | None = None,
        label_thresholds: list[float] | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """The scoring and every `fit` metric on the test rows (the only place test rows are read),
        at the operating point chosen on training rows, as `fit` scores."""
        proba = np.asarray(head.predict_proba(X))
        if self.multilabel:
            cuts = np.asarray(label_thresholds if label_thresholds is not None else 0.5, dtype=np.float64)
            y_pred = (proba >= cuts).astype(np.int64)
        else:
            proba = expand_proba(proba, classes=head.classes_, n_classes=len(self.class_names))
            y_pred = (
                np.argmax(proba, axis=1) if threshold is None else (proba[:, 1] >= threshold).astype(np.int64)
            )
        metrics = compute_metrics(
            y,
            proba=proba,
            y_pred=y_pred,
            class_names=self.class_names,
            threshold=threshold,
            label_thresholds=label_thresholds if self.multilabel else None,
        )
        score = metrics.get(self.scoring)
        if not isinstance(score, int | float):
            score = validation_score(self.scoring, y, proba, classes=None, n_classes=len(self.class_names))
        return float(score), metrics


def _resolve_strategy(strategy: str, head: str) -> str:
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    HEADS.get(head)  # unknown heads raise, with close matches
    if strategy == "auto":
        return "sweep" if head in SWEEP_HEADS else "halving"
    if strategy == "sweep" and head not in SWEEP_HEADS:
        raise InvalidInputError(
            f"the C sweep is the protocol for {' and '.join(SWEEP_HEADS)}; "
            f"use --strategy halving for {head!r}"
        )
    return strategy


def _declared_space(head: str) -> dict[str, Any]:
    space = dict(getattr(HEADS.get(head), "featurekit_search_space", {}) or {})
    if not space:
        raise InvalidInputError(f"head {head!r} declares no search space (featurekit_search_space)")
    return space


def _saved_head(head: str, strategy: str, solver: str) -> str:
    if strategy == "sweep":  # the solver decides which implementation of the same model is saved
        return "logreg-torch" if solver == "featurekit" else "logreg"
    return head


def _base_params(head: str, strategy: str, *, class_weight: str | None, device: str) -> dict[str, Any]:
    """Fixed (not searched) parameters the head takes: class_weight, device."""
    if strategy == "sweep":
        return {"class_weight": class_weight}
    defaults = set(_init_params(head))
    params: dict[str, Any] = {}
    if class_weight is not None:
        if "class_weight" not in defaults:
            raise InvalidInputError(f"head {head!r} has no class_weight parameter")
        params["class_weight"] = class_weight
    if "device" in defaults and device != "auto":
        params["device"] = device
    return params


def _init_params(head: str) -> list[str]:
    import inspect

    return list(inspect.signature(HEADS.get(head)).parameters)


def _load_aligned(paths: list[Path]) -> tuple[list[FeatureSet], list[str]]:
    if not paths:
        raise InvalidInputError("give at least one cache to search on")
    loaded = []
    for path in paths:
        features = load_features(path)
        if features.y is None:
            raise InvalidInputError(f"{path} has no labels; a search needs labelled rows")
        if not features.multilabel:
            features = features.subset(np.flatnonzero(features.y >= 0))
        loaded.append(features)
    names = _cache_names(loaded, paths)
    if len(loaded) > 1:
        loaded = align_feature_sets(loaded, names=names)
    return loaded, names


def _cache_names(sets: list[FeatureSet], paths: list[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{s}#{i + 1}" for i, s in enumerate(stems)]


def _default_work_dir(reports_dir: Path, paths: list[Path], head: str, key: str) -> Path:
    stem = "+".join(p.stem for p in paths)
    return Path(reports_dir) / "search" / f"{stem}__{head}__{key[:8]}"


# --------------------------------------------------------------------------- strategies


def _run_seeds(
    ctx: _Context,
    *,
    split: Any,
    groups: np.ndarray | None,
    seeds: int,
    random_state: int,
    val_size: float,
    strategy: str,
    **options: Any,
) -> tuple[list[SeedOutcome], list[tuple[Any, FeatureVariant]]]:
    """The whole search once per seed: its own validation split and draws; the test rows never change."""
    y = ctx.y
    outcomes, finals = [], []
    for i in range(seeds):
        seed = random_state + i
        val = split_validation(
            y[split.train],
            groups=None if groups is None else groups[split.train],
            val_size=val_size,
            random_state=seed,
        )
        fit_rows, val_rows = split.train[val.train], split.train[val.test]
        runner = _run_sweep if strategy == "sweep" else _run_halving
        outcome, final, variant = runner(
            ctx,
            seed=seed,
            rows=(fit_rows, val_rows, split.train, split.test),
            validation_split=val.description,
            **options,
        )
        outcomes.append(outcome)
        finals.append((final, variant))
        logger.info(
            "seed %d: best %s %s, validation %s %.4f, test %.4f",
            seed,
            outcome.best_variant,
            outcome.best_params,
            ctx.scoring,
            outcome.val_score,
            outcome.test_score,
        )

    return outcomes, finals


def _run_sweep(
    ctx: _Context,
    *,
    seed: int,
    rows: tuple[np.ndarray, ...],
    head: str,
    solver: str,
    device: str,
    class_weight: str | None,
    validation_split: str,
    **_: Any,
) -> tuple[SeedOutcome, Any, FeatureVariant]:
    fit_rows, val_rows, train_rows, test_rows = rows
    y = ctx.y
    sweep_solver = make_sweep_solver(solver, class_weight=class_weight, device=device)
    searched = time.perf_counter()
    best: tuple[float, int, Any, FeatureVariant, Any] | None = None
    fitted = resumed = 0
    for order, variant in enumerate(ctx.variants):
        X = ctx.matrices(variant.name)
        known = {
            int(e["index"]): float(e["score"])
            for e in ctx.log.entries
            if e.get("kind") == "sweep" and e["seed"] == seed and e["variant"] == variant.name
        }
        resumed += len(known)

        def log_trial(trial: CTrial, variant_name: str = variant.name) -> None:
            ctx.log.append({"kind": "sweep", "seed": seed, "variant": variant_name, **asdict(trial)})

        outcome = sweep_c(
            sweep_solver,
            (X[fit_rows], y[fit_rows]),
            (X[val_rows], y[val_rows]),
            scoring=ctx.scoring,
            n_classes=len(ctx.class_names),
            known=known,
            on_trial=log_trial,
        )
        fitted += len(outcome.trials)
        score = outcome.sweep.best_score
        if best is None or score > best[0]:
            best = (score, order, outcome.sweep, variant, outcome.best_head)
    assert best is not None
    val_score, _order, sweep, variant, peak_head = best
    search_seconds = time.perf_counter() - searched
    refit_started = time.perf_counter()
    X = ctx.matrices(variant.name)
    final = sweep_solver.fit_many(X[train_rows], y[train_rows], [sweep.best_C], [peak_head])[0]
    refit_seconds = time.perf_counter() - refit_started
    threshold, label_thresholds = ctx.operating_point(final, X[train_rows], train_rows, seed=seed)
    test_score, metrics = ctx.test(
        final, X[test_rows], y[test_rows], threshold=threshold, label_thresholds=label_thresholds
    )
    outcome_ = SeedOutcome(
        seed=seed,
        best_params={"C": sweep.best_C},
        best_variant=variant.name,
        val_score=val_score,
        test_score=test_score,
        test_metrics=metrics,
        validation_split=validation_split,
        trials_fitted=fitted,
        trials_resumed=resumed,
        search_seconds=search_seconds,
        refit_seconds=refit_seconds,
        threshold=threshold,
        label_thresholds=label_thresholds,
    )
    return outcome_, final, variant


def _run_halving(
    ctx: _Context,
    *,
    seed: int,
    rows: tuple[np.ndarray, ...],
    head: str,
    base_params: dict[str, Any],
    space: dict[str, Any],
    n_trials: int,
    factor: int,
    validation_split: str,
    **_: Any,
) -> tuple[SeedOutcome, Any, FeatureVariant]:
    fit_rows, val_rows, train_rows, test_rows = rows
    y = ctx.y
    names = [v.name for v in ctx.variants]
    defaults = Candidate(trial=0, params=_head_defaults(head, space), variant=_default_variant(ctx.variants))
    candidates = draw_candidates(space, names, n_trials=n_trials, random_state=seed, defaults=defaults)
    order = interleaved_order(y[fit_rows], random_state=seed)
    n_labels = len(ctx.class_names)
    min_rows = min(len(fit_rows), MIN_ROWS_PER_CLASS * n_labels)
    known = {
        (int(e["trial"]), int(e["rung"])): _trial_from_log(e)
        for e in ctx.log.entries
        if e.get("kind") == "halving" and e["seed"] == seed
    }

    def evaluate(candidate: Candidate, subset: np.ndarray) -> float:
        X = ctx.matrices(candidate.variant)
        rows = fit_rows[subset]
        estimator = make_head(head, **base_params, **candidate.params).fit(X[rows], y[rows])
        return ctx.score(estimator, X[val_rows], y[val_rows])

    def log_trial(trial: Trial) -> None:
        ctx.log.append({"kind": "halving", "seed": seed, **asdict(trial)})

    searched = time.perf_counter()
    result = successive_halving(
        candidates,
        evaluate,
        order=order,
        factor=factor,
        min_rows=min_rows,
        known=known,
        on_trial=log_trial,
        protected=frozenset({defaults.trial}),
    )
    search_seconds = time.perf_counter() - searched
    assert result.best is not None
    winner = candidates[result.best.trial]
    variant = next(v for v in ctx.variants if v.name == winner.variant)
    refit_started = time.perf_counter()
    X = ctx.matrices(variant.name)
    final = make_head(head, **base_params, **winner.params).fit(X[train_rows], y[train_rows])
    refit_seconds = time.perf_counter() - refit_started
    threshold, label_thresholds = ctx.operating_point(final, X[train_rows], train_rows, seed=seed)
    test_score, metrics = ctx.test(
        final, X[test_rows], y[test_rows], threshold=threshold, label_thresholds=label_thresholds
    )
    resumed = sum(1 for t in result.trials if (t.trial, t.rung) in known)
    outcome = SeedOutcome(
        seed=seed,
        best_params=winner.params,
        best_variant=winner.variant,
        val_score=result.best.score,
        test_score=test_score,
        test_metrics=metrics,
        validation_split=validation_split,
        trials_fitted=len(result.trials) - resumed,
        trials_resumed=resumed,
        search_seconds=search_seconds,
        refit_seconds=refit_seconds,
        threshold=threshold,
        label_thresholds=label_thresholds,
    )
    return outcome, final, variant


def _head_defaults(head: str, space: dict[str, Any]) -> dict[str, Any]:
    """The head's default value of every searched hyperparameter (what `featurekit fit` uses)."""
    import inspect

    parameters = inspect.signature(HEADS.get(head)).parameters
    return {name: parameters[name].default for name in space if name in parameters}


def _default_variant(variants: list[FeatureVariant]) -> str:
    """The whole first cache, as `featurekit fit` uses it (its 'all' variant when it has blocks)."""
    from featurekit.search.variants import ALL_BLOCKS

    first = [v for v in variants if v.cache_index == 0]
    whole = [v for v in first if v.blocks is None] + [v for v in first if v.name.endswith(ALL_BLOCKS)]
    return (whole or first)[0].name


def _trial_from_log(entry: dict[str, Any]) -> Trial:
    return Trial(**{k: entry[k] for k in Trial.__dataclass_fields__})


# --------------------------------------------------------------------------- outputs


def _summary(outcomes: list[SeedOutcome], strategy: str) -> dict[str, dict[str, float]]:
    columns: dict[str, list[float]] = {
        "validation_score": [o.val_score for o in outcomes],
        "test_score": [o.test_score for o in outcomes],
    }
    if strategy == "sweep":
        columns["log10_C"] = [math.log10(o.best_params["C"]) for o in outcomes]
    return {
        name: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
        for name, v in columns.items()
    }


def _write_trials_csv(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Every logged trial, one row each: seed, strategy fields, each hyperparameter, score, seconds."""
    param_names = sorted({k for e in entries for k in e.get("params", {})})
    header = [
        "seed",
        "kind",
        "trial",
        "rung",
        "n_train",
        "variant",
        "C",
        *param_names,
        "score",
        "seconds",
        "n_iter",
        "status",
        "error",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for e in entries:
            params = e.get("params", {})
            writer.writerow(
                [
                    e.get("seed"),
                    e.get("kind"),
                    e.get("trial", e.get("index")),
                    e.get("rung", ""),
                    e.get("n_train", ""),
                    e.get("variant"),
                    e.get("C", ""),
                    *[_cell(params[p]) if p in params else "" for p in param_names],
                    e.get("score"),
                    round(float(e.get("seconds", 0.0)), 4),
                    e.get("n_iter", ""),
                    e.get("status", "ok"),
                    e.get("error", ""),
                ]
            )
    tmp.replace(path)
    return path


def _cell(value: Any) -> Any:
    """A CSV cell: numbers and strings as they are, lists (tuples) as JSON."""
    return value if isinstance(value, int | float | str) else json.dumps(value)


def _plot(
    path: Path,
    entries: list[dict[str, Any]],
    space: dict[str, Any],
    strategy: str,
    scoring: str,
    first: SeedOutcome,
    *,
    head: str,
) -> Path | None:
    from featurekit.errors import MissingDependencyError
    from featurekit.search.plots import save_search_png

    seeds = {e["seed"] for e in entries if "seed" in e}
    if strategy == "sweep":
        rows = [
            {
                "params": {"C": e["C"], VARIANT: e["variant"]},
                "score": e["score"],
                "group": f"seed {e['seed']}" if len(seeds) > 1 else e["variant"],
            }
            for e in entries
            if e.get("kind") == "sweep"
        ]
        dims = {"C": True}
    else:
        rows = [
            {
                "params": {**e["params"], VARIANT: e["variant"]},
                "score": e["score"],
                "group": int(e["n_train"]),
            }
            for e in entries
            if e.get("kind") == "halving" and e["seed"] == first.seed
        ]
        dims = {name: bool(getattr(dim, "log", False)) for name, dim in space.items()}
    if len({r["params"][VARIANT] for r in rows}) > 1:
        dims[VARIANT] = False
    best = {"params": {**first.best_params, VARIANT: first.best_variant}, "score": first.val_score}
    try:
        return save_search_png(rows, dims, path, scoring=scoring, title=f"search: {head}", best=best)
    except MissingDependencyError as exc:
        logger.warning("no search plot written: %s", exc)
        return None
