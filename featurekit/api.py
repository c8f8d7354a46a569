"""Use-case functions: the same entry points for the CLI and for notebooks.

extract → fit → evaluate → predict. Each wires the packages together and returns a small
result object; none prints (the CLI does).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from featurekit.cache import (
    CachedRows,
    FeatureSet,
    RowTable,
    first_difference,
    load_features,
    open_cached_rows,
    read_provenance,
)
from featurekit.cache.reuse import plan_reuse
from featurekit.config import PreprocessOverrides
from featurekit.ensembling import EnsembleReport as EnsembleReport  # re-exported
from featurekit.ensembling import ensemble as ensemble  # re-exported: api.ensemble(...)
from featurekit.errors import InvalidInputError, ProvenanceMismatchError
from featurekit.evaluation import compute_metrics, expand_proba, split_train_test
from featurekit.heads import make_head
from featurekit.images import HashedFiles, SourceOptions, hash_share, load_image_index, rows_from_files
from featurekit.images.index import ImageIndex
from featurekit.persist import check_compatible, load_model, save_model
from featurekit.reports import RunRecord, write_run_record
from featurekit.searching import SearchReport as SearchReport  # re-exported
from featurekit.searching import search as search  # re-exported: api.search(...)

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CACHE_DIR = Path("cache")
DEFAULT_REPORTS_DIR = Path("reports")


# --------------------------------------------------------------------------- extract


@dataclass(frozen=True)
class ExtractReport:
    cache_path: Path
    rows: int
    reused: int
    extracted: int
    skipped: list[str]  # "path (stage): reason" of every input left out
    bad_inputs_csv: Path | None
    provenance_key: str
    seconds: float
    rank: int = 0  # under torchrun: a rank other than 0 reports only the rows it embedded
    resumed: int = 0  # rows committed by an interrupted earlier run of the same job
    bad_fraction: float = 0.0  # skipped inputs / all inputs


def default_cache_path(data: Path, backbone: str, key: str) -> Path:
    name = Path(data).resolve().name.replace(".", "_") or "data"
    return DEFAULT_CACHE_DIR / f"{name}__{backbone}__{key[:8]}.h5"


def _existing_cache(
    path: Path, *, provenance: dict[str, Any], key: str, overwrite: bool
) -> CachedRows | None:
    """The cache at `path` when its features were made the same way (its rows; the features stay on
    disk until consolidation reads the reused ones); an error when not."""
    if not path.exists() or overwrite:
        return None
    old_provenance, old_key = read_provenance(path)
    if old_key == key:
        return open_cached_rows(path)
    diff = first_difference(old_provenance, provenance)
    what = f"{diff[0]}: cache has {diff[1]!r}, requested {diff[2]!r}" if diff else "provenance key differs"
    raise ProvenanceMismatchError(
        f"{path} holds features made with other settings ({what}); refusing to mix them. "
        "Write to another --out, or pass --overwrite to replace the cache."
    )


def extract(
    data: Path,
    *,
    backbone: str,
    weights: str | None = None,
    out: Path | None = None,
    preprocess: PreprocessOverrides | None = None,
    source: SourceOptions | None = None,
    settings: Any = None,
    overwrite: bool = False,
    layers: tuple[int, ...] = (),
    pools: tuple[str, ...] = ("avg",),
    img_sizes: tuple[int, ...] = (),
) -> ExtractReport:
    """Embed every row of `data` with `backbone` into an HDF5 cache; reuse rows it already holds.

    Work is committed in units as it goes (`settings.commit_every` rows), so a killed or
    interrupted run loses at most one unit and the same call resumes it. `layers` (timm feature
    indices, e.g. (-1, -2)) pooled by each of `pools` ("avg", "max") are stored side by side
    instead of the pre-logits embedding, in one forward pass. Several `img_sizes` (e.g. (224, 288))
    embed each image at each size, stored side by side as blocks `224px`, `288px` (one image
    decode; PIL in the loader); one size is the same as `preprocess.img_size`.
    """
    # Imported here so that `import featurekit.api` stays cheap for heads-only work.
    from featurekit.backbones import check_img_sizes, create_backbone, with_layers, with_sizes
    from featurekit.cache.journal import Journal
    from featurekit.cache.lock import CacheLock
    from featurekit.extract import (
        ExtractionSettings,
        check_settings,
        distributed,
        resolve_device,
        resolve_precision,
    )
    from featurekit.extract.engine import model_rewrites, resolved_runtime
    from featurekit.extract.interrupt import stop_signals
    from featurekit.extract.job import check_on_error
    from featurekit.extract.provenance import build_provenance, build_run_record

    started = time.perf_counter()
    settings = settings or ExtractionSettings()
    check_settings(settings)  # before the (possibly slow) index, hashing and model
    check_on_error(settings.on_error)
    if settings.commit_every < 1:
        raise InvalidInputError(f"commit_every must be at least 1, got {settings.commit_every}")
    if img_sizes:  # checked before the (possibly slow) index and model
        img_sizes = check_img_sizes(img_sizes)
        if preprocess is not None and preprocess.img_size is not None:
            raise InvalidInputError("give the input size once: img_sizes or preprocess.img_size, not both")
        preprocess = replace(preprocess or PreprocessOverrides(), img_size=img_sizes[0])
    ranks = distributed.current_ranks()  # several under torchrun: each embeds every world-th row
    settings = replace(
        settings,
        device=distributed.rank_device(settings.device, ranks),
        progress=settings.progress and ranks.is_main,
    )
    index = load_image_index(Path(data), source or SourceOptions())
    # Hash the files while the model is built: reading and sha256 release the GIL, and the hashes are
    # needed only once the cache's existing rows are matched (10,000 photos: ~0.25 s of one core).
    # Under torchrun each rank hashes its own slice; the slices are exchanged in _run_extraction.
    hashing = _Background(
        lambda: hash_share(index, part=ranks.rank, parts=ranks.world), name="featurekit-hash"
    )
    model = create_backbone(backbone, weights=weights, overrides=preprocess)
    if layers:
        model = with_layers(model, layers=tuple(layers), pools=tuple(pools))
    if len(img_sizes) > 1:  # after the layers: their blocks repeat for every size
        model = with_sizes(model, img_sizes)
    device = resolve_device(settings.device)
    precision = resolve_precision(device, settings.amp)
    provenance = build_provenance(
        model,
        precision=precision,
        extraction={
            **settings.runtime_record(),
            **model_rewrites(model, device, precision),  # BatchNorm layers folded, "same" pads
            "commit_every": settings.commit_every,
            "data": str(data),
            "source_options": asdict(source or SourceOptions()),
        },
        tta=settings.tta,
    )
    run = build_run_record(
        provenance, resolved=resolved_runtime(model, settings, device), rank=ranks.rank, world=ranks.world
    )
    key = _provenance_key(provenance)
    cache_path = Path(out) if out is not None else default_cache_path(Path(data), backbone, key)
    lock = CacheLock(cache_path)
    try:
        with stop_signals() as stop:
            return _run_extraction(
                index,
                model,
                hashing=hashing,
                cache_path=cache_path,
                provenance=provenance,
                run=run,
                key=key,
                settings=settings,
                overwrite=overwrite,
                ranks=ranks,
                lock=lock,
                stop=stop,
                started=started,
            )
    except BaseException:
        if lock.held:  # a run that failed before committing anything leaves nothing behind
            Journal(cache_path).remove_if_empty()
        raise
    finally:
        lock.release()
        distributed.finish(ranks)


class _Background(Generic[T]):
    """`work()` on a daemon thread (a Ctrl-C never waits for it); `result()` joins it and returns
    its value or raises its exception."""

    def __init__(self, work: Callable[[], T], *, name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._value = work()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def _check_ranks_list_the_same_rows(index: ImageIndex, ranks: Any) -> None:
    """Every rank must have indexed the same rows: each embeds every world-th row of its own list.

    Raises on every rank alike (they all compare the same gathered values), so none waits for another.
    """
    from featurekit.extract import distributed

    if ranks.world <= 1:
        return
    listing = hashlib.sha256("\n".join(index.paths).encode()).hexdigest()
    listed = distributed.every_rank(ranks, (len(index), listing))
    if len(set(listed)) > 1:
        counts = ", ".join(f"rank {rank}: {rows} rows" for rank, (rows, _) in enumerate(listed))
        raise InvalidInputError(
            f"{index.root}: the ranks listed different images ({counts}); the folder or CSV changed while "
            "torchrun started them, or the ranks see different file systems. Run the same command again "
            "once every rank sees the same files"
        )


def _run_extraction(
    index: ImageIndex,
    model: Any,
    *,
    hashing: _Background[HashedFiles],
    cache_path: Path,
    provenance: dict[str, Any],
    run: dict[str, Any],
    key: str,
    settings: Any,
    overwrite: bool,
    ranks: Any,
    lock: Any,
    stop: Any,
    started: float,
) -> ExtractReport:
    from featurekit.cache import remove_temporaries
    from featurekit.cache.journal import Journal
    from featurekit.extract import distributed
    from featurekit.extract.bad_inputs import bad_inputs_path, write_bad_inputs
    from featurekit.extract.dataset import BadInput
    from featurekit.extract.job import consolidate, embed_into_journal

    journal = Journal(cache_path, rank=ranks.rank)
    # Rank 0 alone owns the cache: it locks it, clears what crashed writers left and opens the
    # journal; the other ranks only add units. Any rank's failure stops every rank.
    setup_error: BaseException | None = None
    existing: CachedRows | None = None
    try:
        if ranks.is_main:
            lock.acquire()
            remove_temporaries(cache_path)
        existing = _existing_cache(cache_path, provenance=provenance, key=key, overwrite=overwrite)
        if ranks.is_main:
            journal.start(provenance=provenance, key=key, overwrite=overwrite)
    except BaseException as exc:
        setup_error = exc
    distributed.stop_unless_every_rank_ok(
        ranks, setup_error, "another rank could not start the extraction; its log says why"
    )

    _check_ranks_list_the_same_rows(index, ranks)
    hashing_error: BaseException | None = None
    mine: HashedFiles = {}
    try:
        mine = hashing.result()
    except BaseException as exc:
        hashing_error = exc
    distributed.stop_unless_every_rank_ok(
        ranks, hashing_error, "another rank could not hash its files; its log says why"
    )
    hashed = rows_from_files(index, distributed.gather_hashed_files(ranks, mine))
    rows = RowTable.from_index(index, hashed.hashes)
    failures = [
        BadInput(row=i, path=index.paths[i], stage="read", reason=reason)
        for i, reason in hashed.unreadable().items()
    ]
    if failures and settings.on_error == "fail":
        first = failures[0]
        raise InvalidInputError(
            f"{first.path}: cannot be read ({first.reason}); stopped because of --on-error fail "
            f"({len(failures)} unreadable file(s)); fix or remove it, or pass --on-error skip"
        )
    unreadable = {bad.row for bad in failures}
    plan = plan_reuse(rows, existing)
    done_before = journal.read()  # units committed by an interrupted run of the same job
    keys = rows.row_keys()
    wanted = [
        i
        for i in plan.to_extract
        if i not in unreadable and keys[i] not in done_before.features and keys[i] not in done_before.failures
    ]
    distributed.agree(ranks, True)  # every rank has read the journal before any adds to it
    outcome_error: BaseException | None = None
    extracted = 0
    try:
        outcome = embed_into_journal(
            model,
            index,
            rows=wanted[ranks.rank :: ranks.world],
            keys=keys,
            journal=journal,
            settings=settings,
            stop=stop,
            run=run,
        )
        extracted = outcome.rows
    except BaseException as exc:
        outcome_error = exc
    distributed.stop_unless_every_rank_ok(
        ranks, outcome_error, "another rank stopped; committed work is kept and the same command resumes"
    )
    if not ranks.is_main:
        distributed.agree(ranks, True)  # wait for rank 0's cache
        return ExtractReport(
            cache_path=cache_path,
            rows=extracted,
            reused=0,
            extracted=extracted,
            skipped=[],
            bad_inputs_csv=None,
            provenance_key=key,
            seconds=time.perf_counter() - started,
            rank=ranks.rank,
        )
    try:
        contents = journal.read()
        merged = consolidate(
            cache_path,
            rows=rows,
            cached=plan.cached,
            existing=existing,
            contents=contents,
            dim=model.feature_dim,
            provenance=provenance,
        )
        journal.remove()
        failures += merged.failures
        problems = [
            BadInput(row=p.row or -1, path=p.file, stage="validate", reason=p.reason) for p in index.skipped
        ]
        csv_path = write_bad_inputs(bad_inputs_path(cache_path), problems + failures)
        skipped = problems + failures
        return ExtractReport(
            cache_path=cache_path,
            rows=len(merged.kept),
            reused=int((plan.cached >= 0).sum()),
            extracted=extracted,
            skipped=[f"{b.path} ({b.stage}): {b.reason}" for b in skipped],
            bad_inputs_csv=csv_path,
            provenance_key=key,
            seconds=time.perf_counter() - started,
            resumed=sum(1 for i in plan.to_extract if keys[i] in done_before.features),
            bad_fraction=len(skipped) / max(1, len(index) + len(index.skipped)),
        )
    finally:
        distributed.agree(ranks, True)  # the other ranks wait for the cache, also when this failed


def _provenance_key(provenance: dict[str, Any]) -> str:
    from featurekit.cache import provenance_key

    return provenance_key(provenance)


# --------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class FitReport:
    model_path: Path
    run_record_path: Path
    metrics: dict[str, Any]
    split: str
    n_train: int
    n_test: int
    seconds: float
    figures: tuple[Path, ...] = ()  # PNGs next to the run record (confusion matrix / tail accuracy)


def _labelled(features: FeatureSet) -> FeatureSet:
    if features.y is None:
        raise InvalidInputError(
            "this cache has no labels; extract a labelled source (class folders, a CSV label column "
            "or an npz label array) to fit a head"
        )
    if features.multilabel:
        return features
    return features.subset(np.flatnonzero(features.y >= 0))


def default_model_path(cache: Path, head: str) -> Path:
    return DEFAULT_REPORTS_DIR / "models" / f"{Path(cache).stem}__{head}.skops"


def fit(
    cache: Path,
    *,
    head: str = "logreg",
    params: dict[str, Any] | None = None,
    out: Path | None = None,
    test_size: float = 0.2,
    random_state: int = 0,
    reports_dir: Path = DEFAULT_REPORTS_DIR,
    threshold: str = "eer",
    blocks: list[str] | None = None,
    resample: str = "none",
    label_thresholds: str = "f1",
) -> FitReport:
    """Fit a head on the train part of a cache, score it on the held-out part, save both.

    Binary tasks: `threshold` ("eer", "min-hter" or "argmax") picks the decision threshold on
    out-of-fold scores of the training rows; it is saved with the head and used by evaluate/predict.
    Multi-label tasks: `label_thresholds` "f1" picks one threshold per label (best out-of-fold F1 on
    the training rows), saved with the head and used by evaluate/predict; "0.5" keeps 0.5 for all.
    `resample` ("none", "under", "over"): random, seeded under-/over-sampling of the training rows
    to balanced classes (single-label); inside each fold when thresholds are chosen; never the test rows.
    `blocks`: with a cache made by `extract --layers`, fit on these (layer, pool) blocks only
    (e.g. ["layer-1.avg"]); evaluate and predict select the same columns.
    """
    from featurekit.evaluation.operating_point import choose_label_thresholds, choose_threshold
    from featurekit.heads.resampling import RESAMPLE_STRATEGIES, ResampledHead

    if resample not in RESAMPLE_STRATEGIES:
        raise InvalidInputError(f"resample must be one of {', '.join(RESAMPLE_STRATEGIES)}, got {resample!r}")
    started = time.perf_counter()
    features = _labelled(load_features(Path(cache)).select_blocks(blocks))
    y = features.y
    assert y is not None  # guaranteed by _labelled
    split = split_train_test(
        y, groups=features.groups, splits=features.splits, test_size=test_size, random_state=random_state
    )
    estimator = make_head(head, **(params or {}))
    if resample != "none" and features.multilabel:
        raise InvalidInputError(
            f"resample={resample!r} balances single-label classes; this cache is multi-label "
            "(use class_weight='balanced' or the per-label thresholds instead)"
        )
    # Resampling wraps the head, so each fit (every threshold fold too) resamples only its own rows.
    trainable = (
        estimator
        if resample == "none"
        else ResampledHead(estimator, strategy=resample, random_state=random_state)
    )
    fit_started = time.perf_counter()
    binary = not features.multilabel and len(features.class_names) == 2
    decision_threshold = None
    per_label: list[float] | None = None
    groups = features.groups[split.train] if features.groups is not None else None
    if binary:
        decision_threshold = choose_threshold(
            trainable,
            features.X[split.train],
            y[split.train],
            rule=threshold,
            groups=groups,
            random_state=random_state,
        )
    if features.multilabel:
        per_label = choose_label_thresholds(
            trainable,
            features.X[split.train],
            y[split.train],
            rule=label_thresholds,
            groups=groups,
            random_state=random_state,
        )
    trainable.fit(features.X[split.train], y[split.train])
    if isinstance(trainable, ResampledHead):
        estimator = trainable.estimator_  # the model file holds the head itself; resampling is recorded
    fit_seconds = time.perf_counter() - fit_started
    metrics = _score(
        estimator,
        features.subset(split.test),
        features.class_names,
        threshold=decision_threshold,
        label_thresholds=per_label,
    )

    model_path = Path(out) if out is not None else default_model_path(Path(cache), head)
    metadata = {
        "head": head,
        "params": estimator.get_params(),
        "feature_dim": features.feature_dim,
        "feature_blocks": blocks or None,  # columns of a multi-layer cache; None: all
        "class_names": features.class_names,
        "multilabel": features.multilabel,
        "provenance_key": features.provenance_key,
        "provenance": features.provenance,
        "split": split.description,
        "train_rows": features.rows.subset(split.train).fingerprints(),
        "metrics": metrics,
        # Binary heads: the operating point chosen on out-of-fold training scores (None: argmax).
        "threshold": decision_threshold,
        "threshold_rule": threshold if binary else None,
        # Multi-label heads: one threshold per class (class_names order), chosen on training rows only.
        "label_thresholds": per_label,
        "label_threshold_rule": label_thresholds if features.multilabel else None,
        "resample": resample,
        "n_train_fitted": int(getattr(trainable, "n_resampled_", len(split.train))),
    }
    save_model(model_path, estimator, metadata=metadata)
    seconds = time.perf_counter() - started
    record = RunRecord.create(
        command="fit",
        config={
            "cache": str(cache),
            "head": head,
            "params": estimator.get_params(),
            "test_size": test_size,
            "random_state": random_state,
            "threshold_rule": threshold if binary else None,
            "threshold": decision_threshold,
            "label_threshold_rule": label_thresholds if features.multilabel else None,
            "label_thresholds": per_label,
            "resample": resample,
            "n_train_fitted": metadata["n_train_fitted"],
            "feature_blocks": blocks or None,
        },
        metrics=metrics,
        timings={"fit_seconds": fit_seconds, "total_seconds": seconds},
        cache_key=features.provenance_key,
        cache_path=str(cache),
        model_path=str(model_path),
        split=split.description,
    )
    record_path = write_run_record(record, reports_dir=reports_dir)
    return FitReport(
        model_path=model_path,
        run_record_path=record_path,
        metrics=metrics,
        split=split.description,
        n_train=len(split.train),
        n_test=len(split.test),
        seconds=seconds,
        figures=_fit_figures(
            record_path, metrics, features.class_names, title=f"{head} on {Path(cache).name}"
        ),
    )


def _fit_figures(
    record_path: Path, metrics: dict[str, Any], class_names: list[str], *, title: str
) -> tuple[Path, ...]:
    """PNGs beside the run record: the confusion matrix (single-label) or tail accuracy (multi-label)."""
    from featurekit.errors import MissingDependencyError
    from featurekit.evaluation import save_confusion_matrix_png, save_tail_accuracy_png

    stem = record_path.with_suffix("")
    try:
        if "confusion_matrix" in metrics:
            path = Path(f"{stem}.confusion_matrix.png")
            return (save_confusion_matrix_png(metrics["confusion_matrix"], class_names, path),)
        if metrics.get("tail_accuracy"):
            path = Path(f"{stem}.tail_accuracy.png")
            return (save_tail_accuracy_png({title: metrics["tail_accuracy"]}, path),)
    except MissingDependencyError as exc:  # the metrics (and the matrix as data) are in the record
        logger.warning("no figure written: %s", exc)
    return ()


def _score(
    estimator: Any,
    features: FeatureSet,
    class_names: list[str],
    *,
    threshold: float | None = None,
    label_thresholds: list[float] | None = None,
) -> dict[str, Any]:
    y = features.y
    assert y is not None
    proba = estimator.predict_proba(features.X)
    if not features.multilabel:  # a class absent from the training part has no column: add it as zeros
        proba = expand_proba(proba, classes=estimator.classes_, n_classes=len(class_names))
    if features.multilabel and label_thresholds is not None:  # the per-label thresholds saved with it
        y_pred = (np.asarray(proba) >= np.asarray(label_thresholds, dtype=np.float64)).astype(np.int64)
    elif threshold is None:
        y_pred = estimator.predict(features.X)
    else:  # binary head with a saved operating point: every metric is scored at it
        y_pred = (proba[:, 1] >= threshold).astype(np.int64)
    return compute_metrics(
        y,
        proba=proba,
        y_pred=y_pred,
        class_names=class_names,
        threshold=threshold,
        label_thresholds=label_thresholds if features.multilabel else None,
    )


# --------------------------------------------------------------------------- evaluate


def _align_labels(features: FeatureSet, model_classes: list[str]) -> FeatureSet:
    """Re-express the cache's labels in the model's class order (matched by class name)."""
    cache_classes = features.class_names
    if cache_classes == model_classes:
        return features
    unknown = sorted(set(cache_classes) - set(model_classes))
    y = features.y
    assert y is not None
    position = {name: i for i, name in enumerate(model_classes)}
    if features.multilabel:
        if unknown:
            raise InvalidInputError(
                f"the cache has classes the model does not know: {', '.join(unknown[:10])}"
            )
        mapped = np.zeros((len(y), len(model_classes)), dtype=np.uint8)
        for j, name in enumerate(cache_classes):
            mapped[:, position[name]] = y[:, j]
        return FeatureSet(
            X=features.X,
            rows=_with_labels(features.rows, mapped, model_classes),
            provenance=features.provenance,
            provenance_key=features.provenance_key,
        )
    lookup = np.array([position.get(name, -1) for name in cache_classes] + [-1], dtype=np.int64)
    mapped_single = lookup[np.where(y >= 0, y, len(cache_classes))]
    if unknown:
        logger.warning("rows of classes the model does not know are left out: %s", ", ".join(unknown[:10]))
    aligned = FeatureSet(
        X=features.X,
        rows=_with_labels(features.rows, mapped_single, model_classes),
        provenance=features.provenance,
        provenance_key=features.provenance_key,
    )
    return aligned.subset(np.flatnonzero(mapped_single >= 0))


def _with_labels(rows: RowTable, labels: np.ndarray, class_names: list[str]) -> RowTable:
    return replace(rows, labels=labels, class_names=list(class_names))


@dataclass(frozen=True)
class EvaluateReport:
    metrics: dict[str, Any]
    n_rows: int
    rows: str  # which rows were scored


def evaluate(
    model: Path,
    cache: Path | list[Path],
    *,
    rows: str = "unseen",
    trust_pickle: bool = False,
    label_thresholds: str = "saved",
) -> EvaluateReport:
    """Score a saved head on a cache made the same way.

    rows="unseen" (default) leaves out the rows the head was trained on, so evaluating on the
    training cache scores only its held-out part; rows="all" scores every labelled row.
    Multi-label heads: label_thresholds="saved" (default) decides each label at the threshold saved
    with the head (0.5 for heads saved without one); "0.5" at 0.5 for every label.
    """
    if rows not in ("unseen", "all"):
        raise InvalidInputError(f"rows must be 'unseen' or 'all', got {rows!r}")
    if label_thresholds not in ("saved", "0.5"):
        raise InvalidInputError(f"label_thresholds must be 'saved' or '0.5', got {label_thresholds!r}")
    loaded = load_model(Path(model), trust_pickle=trust_pickle)
    caches = list(cache) if isinstance(cache, list | tuple) else [cache]
    if len(caches) > 1 or loaded.metadata.get("caches"):  # an ensemble over several backbones' caches
        from featurekit.ensembling import evaluate_on_caches

        metrics, n_rows = evaluate_on_caches(loaded, caches, rows=rows)
        return EvaluateReport(metrics=metrics, n_rows=n_rows, rows=rows)
    cache = caches[0]
    features = load_features(Path(cache)).select_blocks(loaded.metadata.get("feature_blocks"))
    check_compatible(
        loaded.metadata,
        provenance_key=features.provenance_key,
        feature_dim=features.feature_dim,
        provenance=features.provenance,
    )
    features = _align_labels(_labelled(features), list(loaded.metadata["class_names"]))
    if rows == "unseen":
        seen = set(loaded.metadata.get("train_rows", []))
        fingerprints = features.rows.fingerprints()
        features = features.subset([i for i, fp in enumerate(fingerprints) if fp not in seen])
    if len(features) == 0:
        raise InvalidInputError(
            f"no labelled rows of {cache} are left to score ({rows} rows); "
            "every row was used for training: pass --rows all, or evaluate on another cache"
        )
    saved_labels = loaded.metadata.get("label_thresholds")
    n_labels = len(loaded.metadata["class_names"])
    metrics = _score(
        loaded.estimator,
        features,
        list(loaded.metadata["class_names"]),
        threshold=loaded.metadata.get("threshold"),
        label_thresholds=(saved_labels if label_thresholds == "saved" and saved_labels else [0.5] * n_labels)
        if features.multilabel
        else None,
    )
    return EvaluateReport(metrics=metrics, n_rows=len(features), rows=rows)


# --------------------------------------------------------------------------- predict


def label_cuts(metadata: dict[str, Any], threshold: float | None = None) -> list[float]:
    """A multi-label head's decision threshold per class: `threshold` for all, else the saved ones."""
    n = len(metadata["class_names"])
    if threshold is not None:
        return [float(threshold)] * n
    saved = metadata.get("label_thresholds")
    return [float(v) for v in saved] if saved else [0.5] * n


@dataclass(frozen=True)
class PredictReport:
    out: Path
    rows: int
    failed: int


def _joined_results(results: list[Any]) -> Any:
    """Features of the rows every extraction embedded, side by side in the given order."""
    if len(results) == 1:
        return results[0]
    from featurekit.extract import ExtractionResult

    positions = [{int(row): k for k, row in enumerate(r.rows)} for r in results]
    common = [int(row) for row in results[0].rows if all(int(row) in p for p in positions)]
    features = np.hstack(
        [r.features[[p[row] for row in common]] for r, p in zip(results, positions, strict=True)]
    )
    failures = {bad.row: bad for r in results for bad in r.failures}
    return ExtractionResult(
        features=features.reshape(len(common), -1).astype(np.float32),
        rows=np.asarray(common, dtype=np.int64),
        failures=[failures[row] for row in sorted(failures)],
    )


def predict(
    model: Path,
    data: Path,
    *,
    out: Path,
    source: SourceOptions | None = None,
    settings: Any = None,
    threshold: float | None = None,
    trust_pickle: bool = False,
) -> PredictReport:
    """Backbone + saved head on new images → a CSV with one row per image (or box).

    Multi-label heads: a label is predicted when its probability is >= its threshold: the per-label
    thresholds saved with the head (0.5 without them), or `threshold` for every label when given.
    """
    import csv

    from featurekit.cache.featureset import block_columns
    from featurekit.extract import ExtractionSettings, extract_features, resolve_device
    from featurekit.extract.rebuild import rebuild_backbone

    loaded = load_model(Path(model), trust_pickle=trust_pickle)
    # Validate the images before the (slow) backbone build, so a bad folder or CSV fails at once.
    index = load_image_index(Path(data), source or SourceOptions())
    meta = loaded.metadata
    # One backbone per training cache (several for an ensemble over backbones), each rebuilt from
    # its provenance; a row is predicted when every backbone could embed it.
    recordings = list(meta.get("caches") or [meta])
    results = []
    for record in recordings:
        recorded = record["provenance"]
        # Features must be made exactly as the training cache's were, precision and TTA included.
        run_settings = replace(
            settings or ExtractionSettings(),
            amp=recorded["precision"] == "bfloat16",
            tta=recorded["features"].get("tta", "none"),
        )
        resolve_device(run_settings.device)
        backbone = rebuild_backbone(
            recorded,
            expected_key=record["provenance_key"],
            what=f"the training cache {record.get('name', '')}",
        )
        results.append(extract_features(backbone, index, settings=run_settings))
    result = _joined_results(results)
    class_names = list(meta["class_names"])
    proba = np.zeros((0, len(class_names)))
    if len(result.rows):
        vectors = result.features
        if meta.get("feature_blocks"):
            vectors = vectors[:, block_columns(meta["provenance"], list(meta["feature_blocks"]))]
        proba = np.asarray(loaded.estimator.predict_proba(vectors))
        if not meta.get("multilabel"):
            proba = expand_proba(proba, classes=loaded.estimator.classes_, n_classes=len(class_names))
    by_row = {int(row): k for k, row in enumerate(result.rows)}
    errors = {bad.row: f"{bad.stage}: {bad.reason}" for bad in result.failures}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    box_cols = ["x1", "y1", "x2", "y2"] if index.boxes is not None else []
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *box_cols, "prediction", *[f"p_{c}" for c in class_names], "error"])
        for i, path in enumerate(index.paths):
            box = [f"{v:g}" for v in index.boxes[i]] if index.boxes is not None else []
            if i not in by_row:
                writer.writerow([path, *box, "", *[""] * len(class_names), errors.get(i, "skipped")])
                continue
            p = proba[by_row[i]]
            if meta.get("multilabel"):
                cut = label_cuts(meta, threshold)
                label = "|".join(c for c, v, t in zip(class_names, p, cut, strict=True) if v >= t)
            elif meta.get("threshold") is not None:  # binary head: its saved operating point
                label = class_names[int(p[1] >= meta["threshold"])]
            else:
                label = class_names[int(np.argmax(p))]
            writer.writerow([path, *box, label, *[f"{v:.6f}" for v in p], ""])
    return PredictReport(out=out, rows=len(index), failed=len(index) - len(result.rows))


# --------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class DemoReport:
    backbone: str
    dataset: str
    accuracy: float
    n_test: int
    seconds: float
    cache_path: Path
    model_path: Path


def demo(
    *,
    backbone: str = "tf_efficientnet_lite0",
    workdir: Path = DEFAULT_REPORTS_DIR / "demo",
    progress: bool = True,
    echo: Any = logger.info,
) -> DemoReport:
    """extract → fit → evaluate on scikit-learn's bundled handwritten digits, offline."""
    from featurekit.extract import ExtractionSettings
    from featurekit.images.builtin import write_digits_npz

    started = time.perf_counter()
    workdir = Path(workdir)
    data = workdir / "digits.npz"
    if not data.exists():
        write_digits_npz(data)
    dataset = "scikit-learn digits: 1,797 real 8×8 scans of handwritten digits, 10 classes"
    echo(f"1/3 extract: {dataset} → {backbone} (offline ImageNet weights)")
    extracted = extract(
        data,
        backbone=backbone,
        out=workdir / f"digits__{backbone}.h5",
        source=SourceOptions(npz_label_key="label"),
        settings=ExtractionSettings(progress=progress),
    )
    echo(f"    {extracted.rows} rows in {extracted.cache_path} ({extracted.seconds:.0f} s)")
    echo("2/3 fit: standardised features → logistic regression, stratified 80/20 split")
    fitted = fit(
        extracted.cache_path, head="logreg", out=workdir / "digits__logreg.skops", reports_dir=workdir
    )
    echo(f"    model {fitted.model_path}, run record {fitted.run_record_path}")
    echo("3/3 evaluate: the saved model on the rows it never saw")
    scored = evaluate(fitted.model_path, extracted.cache_path)
    return DemoReport(
        backbone=backbone,
        dataset=dataset,
        accuracy=float(scored.metrics["accuracy"]),
        n_test=scored.n_rows,
        seconds=time.perf_counter() - started,
        cache_path=extracted.cache_path,
        model_path=fitted.model_path,
    )


# --------------------------------------------------------------------------- cache maintenance


def cache_info(cache: Path) -> dict[str, Any]:
    """What a cache holds: rows, feature dimension(s), classes, provenance (JSON-ready)."""
    from featurekit.cache import cache_info as read_info

    return read_info(Path(cache))


def verify_cache(cache: Path) -> Any:
    """Check every unit's checksum (and the journal of an unfinished extraction); a VerifyReport."""
    from featurekit.cache.verify import verify_cache as verify

    return verify(Path(cache))


def repair_cache(cache: Path, *, data: Path | None = None, settings: Any = None) -> Any:
    """Re-extract only the damaged units of `cache` (from `data`, default the recorded source)."""
    from featurekit.extract.repair import repair_cache as repair

    return repair(Path(cache), data=data, settings=settings)
