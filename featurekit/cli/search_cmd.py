"""featurekit search CACHE [CACHE …] --head logreg [--seeds K] [--out MODEL]"""

from __future__ import annotations

import argparse
from pathlib import Path

from featurekit.cli.options import add_operating_point_options, comma_names


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "search",
        help="tune a head on cached features (validation split only), refit the best, save it",
        description="logreg / logreg-torch: the linear-probe sweep of C over 1e-6..1e6 (96 log steps, "
        "parametric binary search). Other heads: random search with successive halving over the "
        "head's declared space. The cached variant (blocks, caches) is searched too. The test rows "
        "(fit's split) are scored once, after the search.",
    )
    p.add_argument("caches", type=Path, nargs="+", help="one cache, or several of the same images (variants)")
    p.add_argument("--head", default="logreg", help="head name (see `featurekit list heads`; default logreg)")
    p.add_argument(
        "--strategy",
        choices=("auto", "sweep", "halving"),
        default="auto",
        help="auto: sweep for logreg/logreg-torch, halving for other heads",
    )
    p.add_argument(
        "--solver",
        choices=("featurekit", "scikit-learn"),
        default="featurekit",
        help="sweep solver: featurekit's batched L-BFGS (GPU when present; saves a logreg-torch head) or "
        "scikit-learn's lbfgs (saves a logreg head)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=27,
        help="halving: candidates drawn (default 27; the sweep's grid is fixed)",
    )
    p.add_argument("--factor", type=int, default=3, help="halving: keep 1/factor per rung (default 3)")
    p.add_argument(
        "--scoring", help="validation score to maximise (default: accuracy; multi-label: average_precision)"
    )
    p.add_argument("--seeds", type=int, default=1, help="repeat the whole search K times; mean ± std")
    p.add_argument(
        "--class-weight",
        choices=("balanced", "none"),
        default="none",
        help="balanced: classes weighted by inverse frequency in every trial and the refit",
    )
    add_operating_point_options(p)
    p.add_argument("--features", type=comma_names, help="only these blocks of a multi-block cache")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--test-size", type=float, default=0.2, help="held-out fraction, as in fit")
    p.add_argument("--val-size", type=float, default=0.2, help="validation fraction of the training rows")
    p.add_argument("--seed", type=int, default=0, help="seed of the test split and of the first search")
    p.add_argument(
        "--out", type=Path, help="model file (default <reports-dir>/models/<cache>__<head>__search.skops)"
    )
    p.add_argument("--work-dir", type=Path, help="trial log, table and plot (default <reports-dir>/search/…)")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where run records go")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from featurekit import api

    report = api.search(
        args.caches,
        head=args.head,
        strategy=args.strategy,
        solver=args.solver,
        n_trials=args.trials,
        factor=args.factor,
        scoring=args.scoring,
        seeds=args.seeds,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        blocks=list(args.features) if args.features else None,
        device=args.device,
        test_size=args.test_size,
        val_size=args.val_size,
        random_state=args.seed,
        out=args.out,
        work_dir=args.work_dir,
        overwrite=args.overwrite,
        reports_dir=args.reports_dir,
        threshold=args.threshold,
        label_thresholds=args.label_thresholds,
    )
    print(f"search ({report.strategy}) for {args.head}, scored by validation {report.scoring}")
    print(f"test rows: {report.test_split}")
    for o in report.seeds:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in o.best_params.items()
        )
        resumed = f", {o.trials_resumed} resumed" if o.trials_resumed else ""
        print(
            f"  seed {o.seed}: best {params} on {o.best_variant}; validation {o.val_score:.4f}, "
            f"test {o.test_score:.4f} ({o.trials_fitted} trials fitted{resumed}, "
            f"{o.search_seconds:.1f} s search, "
            f"{o.refit_seconds:.1f} s refit)"
        )
    if len(report.seeds) > 1:
        for name, stat in report.summary.items():
            print(f"  {name}: {stat['mean']:.4f} ± {stat['std']:.4f}")
    first = report.seeds[0]
    if first.threshold is not None:
        print(f"decision threshold {first.threshold:.4f} ({args.threshold}, out-of-fold training scores)")
    print(f"model ({report.head}, refit on train + validation) saved to {report.model_path}")
    print(f"trials: {report.trials_csv}; plot: {report.plot_path}; run record: {report.run_record_path}")
    return 0
