"""``stylestream evaluate``: offline evaluation tables and plots (paper 000 §4).

``--study paper`` (default) runs the comparison (Table 2), the ablation (Table 3) and the
weight sensitivity (Fig. 2); ``compare`` / ``ablation`` / ``sensitivity`` run one of them;
``trend`` hands the parsed arguments to ``evaluation.trend_study.run(args)`` (the trend-aware
recommender's study, paper 002). Heavy imports stay inside :func:`run`.
"""

from __future__ import annotations

import argparse
import sys

STUDY_CHOICES = ("paper", "compare", "ablation", "sensitivity", "trend")


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} must be >= 1")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="offline evaluation: tables and plots",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("taobao", "hm"), default="taobao")
    p.add_argument("--level", choices=("category", "item"), default="category",
                   help="Taobao only: rank categories (default) or items")
    p.add_argument("--protocol", choices=("peruser", "temporal"), default="peruser",
                   help="peruser: each user's chronological 80/20; temporal: global cut at the "
                        "80%% quantile of event times")
    p.add_argument("--ranking", choices=("full", "sampled"), default="full",
                   help="full: all items, training items masked; sampled: 1 positive vs 99 "
                        "negatives")
    p.add_argument("--seeds", type=_positive, default=5)
    p.add_argument("--max-users", type=_positive, default=None,
                   help="keep the first N users (sorted ids), for CI-sized runs")
    p.add_argument("--epochs", type=_positive, default=30, help="epochs of the neural models")
    p.add_argument("--dim", type=_positive, default=64, help="embedding size")
    p.add_argument("--fusion-epochs", type=_positive, default=20,
                   help="most epochs of the fusion network (early stopping, patience 5)")
    p.add_argument("--fusion-loss", choices=("bpr", "mse", "bce"), default="bpr",
                   help="loss of the proposed system's fusion network; with bpr/bce a row "
                        "trained with the paper's MSE on S (Eq. 21) is added for comparison")
    p.add_argument("--cache", default="var/eval",
                   help="where item feature stores built for evaluation are kept")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of Random,Pop,ItemCF,BPR-MF,NeuMF,VBPR,LightGCN")
    p.add_argument("--study", choices=STUDY_CHOICES, default="paper")
    p.add_argument("--out", default="docs/results", help="output directory")
    p.add_argument("--data", default=None, help="data root (default: $STYLESTREAM_DATA)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _trend(args: argparse.Namespace) -> int:
    from evaluation import trend_study

    return int(trend_study.run(args) or 0)


def run(args: argparse.Namespace) -> int:
    if args.study == "trend":
        return _trend(args)
    from evaluation.studies import STUDIES, StudySettings
    from evaluation.studies import run as run_studies
    from models.baselines import BASELINES
    from models.datasets import DatasetError

    models = None
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in models if m not in BASELINES]
        if unknown:
            print(f"stylestream evaluate: unknown model(s) {unknown}; known: "
                  f"{list(BASELINES)}", file=sys.stderr)
            return 2
    settings = StudySettings(
        dataset=args.dataset, level=args.level, protocol=args.protocol, ranking=args.ranking,
        seeds=args.seeds, max_users=args.max_users, epochs=args.epochs, dim=args.dim,
        models=models, studies=STUDIES if args.study == "paper" else (args.study,),
        out=args.out, data_root=args.data, progress=not args.no_progress,
        fusion_epochs=args.fusion_epochs, fusion_loss=args.fusion_loss, cache=args.cache)
    try:
        written = run_studies(settings)
    except (DatasetError, ValueError) as exc:
        print(f"stylestream evaluate: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
