"""The linear-probe C sweep: featurekit's solver against scikit-learn's lbfgs, in ONE run (issue 6).

Both run the same protocol (`featurekit.search.c_sweep`: C over 1e-6 … 1e6, 96 log steps, the
parametric binary search of CLIP appendix A.3, then a refit on train + validation at the chosen C) on
the same rows of the same cache:

- featurekit: `BatchedSweepSolver`, every round's values of C in one batched L-BFGS, warm-started from
  the values already solved (interpolated in log C between the two around it); float32; CUDA when
  present, else the CPU.
- scikit-learn: `LogisticRegression(solver="lbfgs")` (the `logreg` head) per C, the values of a round
  fitted in parallel on all CPU cores (joblib processes), as a careful notebook would.

Rows: fit's split (stratified, seed 0, 20 % test), the training part split again (stratified, seed 0,
20 % validation). 10 classes are CIFAR-10's labels; 100 classes are synthetic: each class cut into 10
sub-classes by k-means on its own features (seed 0), so that the labels are learnable.
It also reports, at featurekit's chosen C, scikit-learn's test accuracy (the "same C" check).

    python bench/search_speed.py --cache /tmp/cifar20k_lite0.h5 --classes 10,100 \
        --json bench/results/search-cpu-2core.json --markdown bench/results/search-cpu-2core.md

Make the cache with `featurekit extract <CIFAR-10 subset>/train --backbone tf_efficientnet_lite0`
(the subset is ../shared/data/cifar10/train_2000_per_class.zip: 20,000 images, D = 1280).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from featurekit.cache import load_features
from featurekit.evaluation import split_train_test, split_validation
from featurekit.search.linear_probe import BatchedSweepSolver, SklearnSweepSolver, sweep_c


def subclass_labels(X: np.ndarray, y: np.ndarray, per_class: int) -> np.ndarray:
    """per_class k-means clusters inside every class: len(unique(y)) · per_class learnable labels."""
    from sklearn.cluster import KMeans

    out = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        km = KMeans(n_clusters=per_class, n_init=3, random_state=0).fit(X[rows])
        out[rows] = c * per_class + km.labels_
    return out


def run_solver(solver: Any, X: np.ndarray, y: np.ndarray, rows: dict[str, np.ndarray]) -> dict[str, Any]:
    fit, val, train, test = rows["fit"], rows["val"], rows["train"], rows["test"]
    started = time.perf_counter()
    outcome = sweep_c(
        solver, (X[fit], y[fit]), (X[val], y[val]), scoring="accuracy", n_classes=int(y.max()) + 1
    )
    sweep_s = time.perf_counter() - started
    refit_started = time.perf_counter()
    final = solver.fit_many(X[train], y[train], [outcome.sweep.best_C], [outcome.best_head])[0]
    refit_s = time.perf_counter() - refit_started
    accuracy = float(np.mean(final.predict(X[test]) == y[test]))
    return {
        "best_C": outcome.sweep.best_C,
        "val_accuracy": outcome.sweep.best_score,
        "test_accuracy": accuracy,
        "fits": len(outcome.trials),
        "sweep_seconds": sweep_s,
        "refit_seconds": refit_s,
        "total_seconds": sweep_s + refit_s,
        "iterations": [t.n_iter for t in outcome.trials],
        "trials": [{"C": t.C, "val_accuracy": t.score, "n_iter": t.n_iter} for t in outcome.trials],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument(
        "--classes", default="10,100", help="10 (real labels) and/or 100 (k-means sub-classes)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-sklearn", action="store_true", help="featurekit only (e.g. a second GPU run)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    import torch

    features = load_features(args.cache)
    X, y_real = features.X, features.y
    assert y_real is not None
    split = split_train_test(y_real, test_size=0.2, random_state=0)
    val = split_validation(y_real[split.train], val_size=0.2, random_state=0)
    rows = {
        "train": split.train,
        "test": split.test,
        "fit": split.train[val.train],
        "val": split.train[val.test],
    }
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    machine = {
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "torch_threads": torch.get_num_threads(),
    }
    results: dict[str, Any] = {
        "cache": str(args.cache),
        "rows": {k: len(v) for k, v in rows.items()},
        "feature_dim": int(X.shape[1]),
        "machine": machine,
        "runs": [],
    }
    print(json.dumps({"rows": results["rows"], "D": X.shape[1], **machine}))
    for n_classes in [int(c) for c in args.classes.split(",")]:
        if n_classes == len(np.unique(y_real)):
            y = y_real
        else:
            per_class = n_classes // len(np.unique(y_real))
            y = subclass_labels(X, y_real, per_class)
        run: dict[str, Any] = {"classes": int(y.max()) + 1}
        featurekit = BatchedSweepSolver(device=device)
        if device.startswith("cuda"):  # one untimed solve: CUDA context and kernels, not the sweep
            featurekit.fit_many(X[rows["fit"]][:512], y[rows["fit"]][:512], [1.0], [None])
            torch.cuda.synchronize()
        run["featurekit"] = run_solver(featurekit, X, y, rows)
        print(f"{run['classes']} classes featurekit: {_brief(run['featurekit'])}")
        if not args.skip_sklearn:
            sklearn = SklearnSweepSolver(n_jobs=-1)
            run["scikit-learn"] = run_solver(sklearn, X, y, rows)
            print(f"{run['classes']} classes scikit-learn: {_brief(run['scikit-learn'])}")
            same_C = run["featurekit"]["best_C"]
            ref = sklearn.fit_many(X[rows["train"]], y[rows["train"]], [same_C], [None])[0]
            run["sklearn_at_featurekit_C"] = float(np.mean(ref.predict(X[rows["test"]]) == y[rows["test"]]))
            run["speedup"] = run["scikit-learn"]["total_seconds"] / run["featurekit"]["total_seconds"]
            same = run["sklearn_at_featurekit_C"]
            print(f"  speed-up {run['speedup']:.2f}x; scikit-learn at featurekit's C: {same:.4f}")
        results["runs"].append(run)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(results))


def _brief(run: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in run.items() if k != "trials"})


def markdown(results: dict[str, Any]) -> str:
    m, r = results["machine"], results["rows"]
    lines = [
        "C sweep (96 steps, parametric binary search, refit on train + validation), "
        f"D = {results['feature_dim']}, {r['fit']} fit / {r['val']} validation / {r['test']} test rows; "
        f"{m['device']}, {m['cpu_cores']} CPU cores, torch {m['torch']}.",
        "",
        "| classes | solver | fits | sweep s | refit s | total s | chosen C | val acc | test acc "
        "| speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        for name in ("featurekit", "scikit-learn"):
            if name not in run:
                continue
            s = run[name]
            speed = f"{run['speedup']:.2f}×" if name == "featurekit" and "speedup" in run else ""
            lines.append(
                f"| {run['classes']} | {name} | {s['fits']} | {s['sweep_seconds']:.1f} "
                f"| {s['refit_seconds']:.1f} | {s['total_seconds']:.1f} | {s['best_C']:.3g} "
                f"| {s['val_accuracy']:.4f} | {s['test_accuracy']:.4f} | {speed} |"
            )
        if "sklearn_at_featurekit_C" in run:
            lines.append(
                f"| {run['classes']} | scikit-learn at featurekit's C | | | | "
                f"| {run['featurekit']['best_C']:.3g} | | {run['sklearn_at_featurekit_C']:.4f} | |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
