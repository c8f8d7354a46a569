"""One search, seed by seed: the C sweep or successive halving, the refit, the operating point, the test.

`SearchContext` holds what every seed shares (aligned features, labels, variants, the trial log) and
is the only code that reads the test rows (`SearchContext.test`, after the winner is refitted).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from featurekit.cache import FeatureSet
from featurekit.evaluation import compute_metrics, expand_proba, split_validation
from featurekit.heads import head_defaults, make_head
from featurekit.search.halving import (
    MIN_ROWS_PER_CLASS,
    Candidate,
    Trial,
    draw_candidates,
    interleaved_order,
    successive_halving,
)
from featurekit.search.linear_probe import CTrial, make_sweep_solver, sweep_c
from featurekit.search.scoring import validation_score
from featurekit.search.trial_log import TrialLog
from featurekit.search.variants import FeatureVariant, VariantMatrices

logger = logging.getLogger(__name__)


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


@dataclass
class SearchContext:
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

    def score_winner(
        self, final: Any, X: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray, *, seed: int
    ) -> tuple[float | None, list[float] | None, float, dict[str, Any]]:
        """The refitted winner's operating point (training rows) and its test score and metrics:
        threshold, label thresholds, test score, metrics."""
        threshold, label_thresholds = self.operating_point(final, X[train_rows], train_rows, seed=seed)
        test_score, metrics = self.test(
            final, X[test_rows], self.y[test_rows], threshold=threshold, label_thresholds=label_thresholds
        )
        return threshold, label_thresholds, test_score, metrics

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


def run_seeds(
    ctx: SearchContext,
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
        runner = run_sweep if strategy == "sweep" else run_halving
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


def run_sweep(
    ctx: SearchContext,
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
    best: tuple[float, Any, FeatureVariant, Any] | None = None  # score, sweep, variant, peak head
    fitted = resumed = 0
    for variant in ctx.variants:
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
        if best is None or score > best[0]:  # ties keep the earlier variant
            best = (score, outcome.sweep, variant, outcome.best_head)
    assert best is not None
    val_score, sweep, variant, peak_head = best
    search_seconds = time.perf_counter() - searched
    refit_started = time.perf_counter()
    X = ctx.matrices(variant.name)
    final = sweep_solver.fit_many(X[train_rows], y[train_rows], [sweep.best_C], [peak_head])[0]
    refit_seconds = time.perf_counter() - refit_started
    threshold, label_thresholds, test_score, metrics = ctx.score_winner(
        final, X, train_rows, test_rows, seed=seed
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


def run_halving(
    ctx: SearchContext,
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
    if "random_state" in base_params:  # an unseeded head (searching._base_params): this seed's
        base_params = {**base_params, "random_state": seed}
    names = [v.name for v in ctx.variants]
    # Trial 0: what `featurekit fit` uses, the head's defaults of every searched hyperparameter.
    fit_params = {k: v for k, v in head_defaults(head).items() if k in space}
    defaults = Candidate(trial=0, params=fit_params, variant=default_variant(ctx.variants))
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
    threshold, label_thresholds, test_score, metrics = ctx.score_winner(
        final, X, train_rows, test_rows, seed=seed
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


def default_variant(variants: list[FeatureVariant]) -> str:
    """The whole first cache, as `featurekit fit` uses it (its 'all' variant when it has blocks)."""
    from featurekit.search.variants import ALL_BLOCKS

    first = [v for v in variants if v.cache_index == 0]
    whole = [v for v in first if v.blocks is None] + [v for v in first if v.name.endswith(ALL_BLOCKS)]
    return (whole or first)[0].name


def _trial_from_log(entry: dict[str, Any]) -> Trial:
    return Trial(**{k: entry[k] for k in Trial.__dataclass_fields__})


def summarize(outcomes: list[SeedOutcome], strategy: str) -> dict[str, dict[str, float]]:
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
