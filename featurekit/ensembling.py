"""The `ensemble` use case: several heads, on one cache or on the caches of several backbones.

Members are head names, fitted inside the ensemble on one train split, so every member and the
ensemble are scored on the same held-out rows and stacking can use out-of-fold predictions (a
saved model file was fitted on rows of its own choosing, which could leak into the held-out part).

- one cache: one member per head.
- several caches, fusion="late": the caches' rows are aligned by row identity (content hash + box)
  and one member per (cache, head) reads its own cache's columns; the votes or stacking combine them.
- several caches, fusion="early": the aligned caches' features are concatenated and each head is
  fitted on all of them (one head: a single model on the concatenation).

The ensemble is saved as one skops model file (`featurekit.heads.ensemble.EnsembleHead`) whose
metadata records, for several caches, each cache's provenance key and feature dimension; `evaluate`
then takes the same caches (in any order) and refuses one made another way. Like `api`, this module
prints nothing; `featurekit.api` re-exports `ensemble`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from featurekit.cache import FeatureSet, load_features
from featurekit.cache.alignment import align_feature_sets, concatenate_features
from featurekit.errors import InvalidInputError, ProvenanceMismatchError
from featurekit.evaluation import compute_metrics, expand_proba, split_train_test
from featurekit.heads import HEADS
from featurekit.heads.ensemble import METHODS, TIE_BREAKERS, EnsembleHead
from featurekit.persist import check_compatible, save_model
from featurekit.persist.model_file import LoadedModel
from featurekit.reports import RunRecord, write_run_record

logger = logging.getLogger(__name__)

FUSIONS = ("late", "early")
CACHES = "caches"  # model metadata: one entry per cache of a multi-cache ensemble


@dataclass(frozen=True)
class EnsembleReport:
    model_path: Path
    run_record_path: Path
    metrics: dict[str, Any]  # the ensemble's, on the held-out rows
    member_metrics: dict[str, dict[str, Any]]  # each member's, on the same rows
    member_scores: dict[str, float] | None  # out-of-fold training accuracy (stacking, "strongest")
    split: str
    n_train: int
    n_test: int
    seconds: float


def ensemble(
    caches: Sequence[Path],
    *,
    heads: Sequence[str] = ("logreg",),
    method: str = "soft",
    weights: Sequence[float] | None = None,
    tie_breaker: str = "strongest",
    fusion: str = "late",
    cv: int = 5,
    out: Path | None = None,
    test_size: float = 0.2,
    random_state: int = 0,
    reports_dir: Path = Path("reports"),
) -> EnsembleReport:
    """Fit an ensemble of `heads` on one or several caches, score it and each member, save it.

    `weights`: one per member, in the order members are listed (for several caches with late fusion:
    each cache's heads in turn). The split is `fit`'s (seeded, stratified; the split column or
    groups when the cache has them); with several caches it is made on the first one's rows.
    """
    started = time.perf_counter()
    caches = [Path(c) for c in caches]
    _check_options(caches, heads=heads, method=method, tie_breaker=tie_breaker, fusion=fusion)
    loaded = [_labelled(load_features(c), c) for c in caches]
    names = _cache_names(loaded, caches)
    aligned = align_feature_sets(loaded, names=names) if len(loaded) > 1 else loaded
    X, blocks = concatenate_features(aligned, names=names)
    reference = aligned[0]
    y = reference.y
    assert y is not None  # guaranteed by _labelled
    split = split_train_test(
        y, groups=reference.groups, splits=reference.splits, test_size=test_size, random_state=random_state
    )
    member_names, member_heads, columns = _plan_members(list(heads), blocks, fusion=fusion)
    estimator = EnsembleHead(
        estimators=member_heads,
        method=method,
        weights=list(weights) if weights is not None else None,
        tie_breaker=tie_breaker,
        columns=columns,
        cv=cv,
        random_state=random_state,
    )
    groups = reference.groups[split.train] if reference.groups is not None else None
    fit_started = time.perf_counter()
    estimator.fit(X[split.train], y[split.train], groups=groups)
    fit_seconds = time.perf_counter() - fit_started

    X_test, y_test, class_names = X[split.test], y[split.test], reference.class_names
    member_metrics = {
        name: _metrics(y_test, proba, estimator.classes_, class_names)
        for name, proba in zip(member_names, estimator.member_probas(X_test), strict=True)
    }
    metrics = _metrics(
        y_test,
        estimator.predict_proba(X_test),
        estimator.classes_,
        class_names,
        y_pred=estimator.predict(X_test),
    )
    scores = estimator.member_scores_
    member_scores = (
        None if scores is None else {n: float(s) for n, s in zip(member_names, scores, strict=True)}
    )

    key = reference.provenance_key if len(aligned) == 1 else combined_key(aligned)
    model_path = Path(out) if out is not None else _default_model_path(caches, method)
    ranges: list[tuple[int, int] | None] = list(columns) if columns else [None] * len(member_names)
    description = {
        "method": method,
        "fusion": fusion if len(aligned) > 1 else None,
        "tie_breaker": tie_breaker if method == "hard" else None,
        "weights": list(weights) if weights is not None else None,
        "cv": cv,
        "members": [
            {"name": n, "head": h, "columns": list(c) if c else None}
            for n, h, c in zip(member_names, member_heads, ranges, strict=True)
        ],
        "member_scores_oof": member_scores,
    }
    metadata: dict[str, Any] = {
        "head": "ensemble",
        "params": estimator.get_params(),
        "ensemble": description,
        "feature_dim": int(X.shape[1]),
        "feature_blocks": None,
        "class_names": class_names,
        "multilabel": False,
        "provenance_key": key,
        "provenance": reference.provenance if len(aligned) == 1 else None,
        CACHES: None if len(aligned) == 1 else _cache_records(aligned, names, caches),
        "split": split.description,
        "train_rows": reference.subset(split.train).rows.fingerprints(),
        "metrics": metrics,
        "member_metrics": member_metrics,
        "threshold": None,  # votes and stacking decide by argmax; no binary operating point
        "threshold_rule": None,
    }
    save_model(model_path, estimator, metadata=metadata)
    seconds = time.perf_counter() - started
    record = RunRecord.create(
        command="ensemble",
        config={
            "caches": [str(c) for c in caches],
            "heads": list(heads),
            "test_size": test_size,
            "random_state": random_state,
            **description,
        },
        metrics={**metrics, "members": member_metrics},
        timings={"fit_seconds": fit_seconds, "total_seconds": seconds},
        cache_key=key,
        cache_path=",".join(str(c) for c in caches),
        model_path=str(model_path),
        split=split.description,
    )
    record_path = write_run_record(record, reports_dir=reports_dir)
    return EnsembleReport(
        model_path=model_path,
        run_record_path=record_path,
        metrics=metrics,
        member_metrics=member_metrics,
        member_scores=member_scores,
        split=split.description,
        n_train=len(split.train),
        n_test=len(split.test),
        seconds=seconds,
    )


def evaluate_on_caches(
    loaded: LoadedModel, caches: Sequence[Path], *, rows: str
) -> tuple[dict[str, Any], int]:
    """Metrics and row count of a model fitted on several caches (late or early fusion), scored on
    the same caches (any order). Each cache must match the provenance key of one recorded cache."""
    meta = loaded.metadata
    recorded = meta.get(CACHES)
    caches = [Path(c) for c in caches]
    if not recorded:
        raise InvalidInputError(
            f"this model was fit on one cache's features; got {len(caches)} caches: pass only the one "
            "made like its training cache"
        )
    if len(caches) != len(recorded):
        raise InvalidInputError(
            f"this ensemble was fit on {len(recorded)} caches "
            f"({', '.join(str(r['name']) for r in recorded)}); got {len(caches)}: pass one cache made "
            "like each"
        )
    feature_sets = [load_features(c) for c in caches]
    ordered = _match_recorded(recorded, feature_sets)
    names = [str(r["name"]) for r in recorded]
    aligned = align_feature_sets(
        [_align_classes(_labelled(f, c), list(meta["class_names"])) for f, c in ordered], names=names
    )
    if rows == "unseen":
        seen = set(meta.get("train_rows", []))
        fingerprints = aligned[0].rows.fingerprints()
        keep = [i for i, fp in enumerate(fingerprints) if fp not in seen]
        aligned = [f.subset(keep) for f in aligned]
    if len(aligned[0]) == 0:
        raise InvalidInputError(
            f"no labelled rows of these caches are left to score ({rows} rows); every row was used for "
            "training: pass --rows all, or evaluate on other caches"
        )
    X, _ = concatenate_features(aligned, names=names)
    y = aligned[0].y
    assert y is not None
    estimator = loaded.estimator
    metrics = _metrics(
        y,
        estimator.predict_proba(X),
        estimator.classes_,
        list(meta["class_names"]),
        y_pred=estimator.predict(X),
    )
    return metrics, len(y)


def combined_key(aligned: Sequence[FeatureSet]) -> str:
    """One key for features concatenated from several caches (order matters)."""
    text = "+".join(f.provenance_key for f in aligned)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- helpers


def _check_options(
    caches: list[Path], *, heads: Sequence[str], method: str, tie_breaker: str, fusion: str
) -> None:
    if not caches:
        raise InvalidInputError("give at least one cache")
    if not heads or isinstance(heads, str):
        raise InvalidInputError(f"heads must be a non-empty list of head names, got {heads!r}")
    if len(set(heads)) != len(heads):
        raise InvalidInputError(f"a head is named more than once: {', '.join(heads)}")
    for name in heads:
        HEADS.get(name)  # unknown names: an error listing the close matches
        if name == "ensemble":
            raise InvalidInputError("an ensemble cannot be a member of an ensemble")
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if tie_breaker not in TIE_BREAKERS:
        raise InvalidInputError(f"tie-breaker must be one of {', '.join(TIE_BREAKERS)}, got {tie_breaker!r}")
    if fusion not in FUSIONS:
        raise InvalidInputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if len(caches) == 1 and len(heads) == 1:
        raise InvalidInputError(
            "one head on one cache is not an ensemble: give several heads (--heads logreg,knn) or several "
            "caches (one per backbone), or use `featurekit fit`"
        )
    if len({c.resolve() for c in caches}) != len(caches):
        raise InvalidInputError("a cache is given more than once")


def _labelled(features: FeatureSet, path: Path | str) -> FeatureSet:
    if features.y is None:
        raise InvalidInputError(f"{path} has no labels; an ensemble is fitted and scored on labelled rows")
    if features.multilabel:
        raise InvalidInputError(
            f"{path} is multi-label; ensembles take single-label caches (fit multi-label heads with "
            "`featurekit fit`)"
        )
    return features.subset(np.flatnonzero(features.y >= 0))


def _cache_names(feature_sets: list[FeatureSet], paths: list[Path]) -> list[str]:
    """A short name per cache for member names: the backbone, or the file name when two share one."""
    backbones = [str(f.provenance.get("backbone", p.stem)) for f, p in zip(feature_sets, paths, strict=True)]
    names = backbones if len(set(backbones)) == len(backbones) else [p.stem for p in paths]
    if len(set(names)) != len(names):
        names = [f"{n}#{i + 1}" for i, n in enumerate(names)]
    return names


def _plan_members(
    heads: list[str], blocks: list[Any], *, fusion: str
) -> tuple[list[str], list[str], list[tuple[int, int]] | None]:
    """(member names, head names, column range per member or None) for the given caches and fusion."""
    if len(blocks) == 1:
        return list(heads), list(heads), None
    if fusion == "early":
        joined = "+".join(b.name for b in blocks)
        return [f"{h}@{joined}" for h in heads], list(heads), None
    names, member_heads, columns = [], [], []
    for block in blocks:
        for head in heads:
            names.append(f"{head}@{block.name}")
            member_heads.append(head)
            columns.append((block.start, block.stop))
    return names, member_heads, columns


def _cache_records(aligned: list[FeatureSet], names: list[str], paths: list[Path]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "path": str(path),
            "feature_dim": f.feature_dim,
            "provenance_key": f.provenance_key,
            "provenance": f.provenance,
        }
        for f, name, path in zip(aligned, names, paths, strict=True)
    ]


def _match_recorded(
    recorded: list[dict[str, Any]], feature_sets: list[FeatureSet]
) -> list[tuple[FeatureSet, str]]:
    """The given caches in the recorded order, matched by provenance key; an error naming what differs."""
    remaining = list(range(len(feature_sets)))
    matched: list[int | None] = []
    for record in recorded:
        hit = next((i for i in remaining if feature_sets[i].provenance_key == record["provenance_key"]), None)
        matched.append(hit)
        if hit is not None:
            remaining.remove(hit)
    ordered = []
    for record, hit in zip(recorded, matched, strict=True):
        if hit is None:
            other = feature_sets[remaining.pop(0)]
            check_compatible(  # raises, naming the first differing setting
                record,
                provenance_key=other.provenance_key,
                feature_dim=other.feature_dim,
                provenance=other.provenance,
            )
            raise ProvenanceMismatchError(f"no given cache matches {record['name']}")  # not reached
        ordered.append((feature_sets[hit], str(record["name"])))
    return ordered


def _align_classes(features: FeatureSet, model_classes: list[str]) -> FeatureSet:
    """Single-label rows re-expressed in the model's class order; rows of unknown classes left out."""
    if features.class_names == model_classes:
        return features
    position = {name: i for i, name in enumerate(model_classes)}
    lookup = np.array([position.get(n, -1) for n in features.class_names], dtype=np.int64)
    y = features.y
    assert y is not None
    mapped = lookup[y]
    unknown = sorted(set(features.class_names) - set(model_classes))
    if unknown:
        logger.warning("rows of classes the model does not know are left out: %s", ", ".join(unknown[:10]))
    rows = replace(features.rows, labels=mapped, class_names=list(model_classes))
    return replace(features, rows=rows).subset(np.flatnonzero(mapped >= 0))


def _metrics(
    y: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    class_names: list[str],
    *,
    y_pred: np.ndarray | None = None,
) -> dict[str, Any]:
    full = expand_proba(proba, classes=classes, n_classes=len(class_names))
    if y_pred is None:  # a member: its most probable class, the vote it casts in a hard vote
        y_pred = np.asarray(classes)[np.asarray(proba).argmax(axis=1)]
    return compute_metrics(y, proba=full, y_pred=y_pred, class_names=class_names)


def _default_model_path(caches: list[Path], method: str) -> Path:
    stem = "+".join(c.stem for c in caches)
    return Path("reports") / "models" / f"{stem}__ensemble-{method}.skops"
