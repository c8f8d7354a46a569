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

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurekit.cache import FeatureSet, load_features
from featurekit.cache.alignment import align_feature_sets
from featurekit.errors import InvalidInputError, SearchInterrupted
from featurekit.evaluation import split_train_test
from featurekit.heads import HEADS, head_defaults
from featurekit.persist import save_model
from featurekit.reports import RunRecord, write_run_record
from featurekit.search.halving import DEFAULT_FACTOR, DEFAULT_N_TRIALS
from featurekit.search.linear_probe import SOLVERS
from featurekit.search.outputs import save_plot, write_trials_csv
from featurekit.search.runner import SearchContext, SeedOutcome, run_seeds, summarize
from featurekit.search.scoring import check_scoring, default_scoring
from featurekit.search.trial_log import TrialLog
from featurekit.search.variants import VariantMatrices, feature_variants

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "sweep", "halving")
SWEEP_HEADS = ("logreg", "logreg-torch")
SEARCH_VERSION = 2  # 2: the head's defaults are trial 0 and reach the last rung


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
    base_params = _base_params(
        saved_head, strategy, class_weight=class_weight, device=device, random_state=random_state
    )
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

    context = SearchContext(
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
        outcomes, finals = run_seeds(
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
    summary = summarize(outcomes, strategy)
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
    trials_csv = write_trials_csv(work / "trials.csv", log.entries)
    plot = save_plot(work / "search.png", log.entries, space, strategy, scoring, first, head=head)
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


def _base_params(
    head: str, strategy: str, *, class_weight: str | None, device: str, random_state: int
) -> dict[str, Any]:
    """Fixed (not searched) parameters the head takes: class_weight, device, and a random_state where
    the head's own default is unseeded (LinearSVC's coordinate order, LightGBM's bagging), so that the
    same command gives the same trials; each seed's run replaces it with that seed (runner.py)."""
    if strategy == "sweep":
        return {"class_weight": class_weight}
    defaults = head_defaults(head)
    params: dict[str, Any] = {}
    if class_weight is not None:
        if "class_weight" not in defaults:
            raise InvalidInputError(f"head {head!r} has no class_weight parameter")
        params["class_weight"] = class_weight
    if device != "auto" and "device" in defaults:
        params["device"] = device
    elif device not in ("auto", "cpu"):
        logger.warning("head %r runs on the CPU only; device %r is not used", head, device)
    if "random_state" in defaults and defaults["random_state"] is None:
        params["random_state"] = random_state
    return params


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
