"""``stylestream evaluate``: offline evaluation tables and plots (paper 000 §4).

``--study paper`` (default) runs the comparison (Table 2), the ablation (Table 3) and the
weight sensitivity (Fig. 2); ``compare`` / ``ablation`` / ``sensitivity`` run one of them;
``trend`` hands the parsed arguments to ``evaluation.trend_study.run(args)`` (the trend-aware
recommender's study, paper 002). Heavy imports stay inside :func:`run`.

``--protocol replay`` is the protocol that decides what ships (``evaluation.replay``): the log
before a cut T through Kafka and the real workers (embedded services unless
STYLESTREAM_KAFKA/STYLESTREAM_REDIS are set), each shopper's last list scored against what the
shopper did after T, beside popularity, trending, own history, ItemCF and LightGCN.
``--offline`` runs its offline twin only (same code, no services). ``--events PATH`` replays
any log in the Taobao or H&M CSV layout (all of it, unless ``--cut``), ``--future PATH`` scores
the lists against a later log, ``--lists-out PATH`` writes every shopper's final list as JSON.
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
    p.add_argument("--protocol", choices=("peruser", "temporal", "replay"), default="peruser",
                   help="peruser: each user's chronological 80/20; temporal: global cut at the "
                        "80%% quantile of event times; replay: the log before a cut through "
                        "the live workers, scored on what shoppers did next")
    p.add_argument("--cut", default=None,
                   help="replay: the cut T (epoch s or ISO-8601; default: Taobao the start of "
                        "its last day, H&M of its last month; with --events, after its end)")
    p.add_argument("--horizon-days", type=float, default=None,
                   help="replay: days after T that are scored, and the spacing of the ranker's "
                        "training cuts (default: 1 for Taobao, 30 otherwise)")
    p.add_argument("--events", default=None,
                   help="replay: a log in the Taobao or H&M CSV layout instead of --dataset")
    p.add_argument("--future", default=None,
                   help="replay: a later log (same layout) to score the lists against")
    p.add_argument("--lists-out", default=None,
                   help="replay: write every shopper's final list here as JSON "
                        "{user_id: [item_id, ...]}")
    p.add_argument("--offline", action="store_true",
                   help="replay: the offline twin only (no Kafka, Redis or workers)")
    p.add_argument("--no-ablations", action="store_true",
                   help="replay: skip the ablation rows")
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


def _replay(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from evaluation.live_replay import replay_live
    from evaluation.replay import (
        ReplayInputs,
        SystemConfig,
        default_cut,
        default_step,
        offline_run,
        parse_time,
        system_training,
        write_table,
    )
    from models.datasets import DatasetError, load, read_events_csv
    from scripts.embedded import services_for
    from serving.diversity import DiversityConfig
    from serving.recall import RecallConfig
    from streams.config import load_settings

    settings = load_settings()
    try:
        if args.events:
            dataset, events = read_events_csv(args.events, level=args.level)
            future = read_events_csv(args.future, level=args.level)[1] if args.future else []
            cut = parse_time(args.cut) if args.cut else max(e.t for e in events) + 1.0
        else:
            dataset = args.dataset
            events = load(dataset, args.data, level=args.level, max_users=args.max_users)
            future = None
            cut = parse_time(args.cut) if args.cut else default_cut(dataset, events)
    except (DatasetError, ValueError) as exc:
        print(f"stylestream evaluate: {exc}", file=sys.stderr)
        return 2
    step = args.horizon_days * 86400.0 if args.horizon_days else default_step(dataset)
    inputs = ReplayInputs(dataset, args.level if dataset == "taobao" else "item", events, cut,
                          step, future_events=future)
    if args.events:
        inputs.future_events = future
    config = SystemConfig(decay=settings.decay,
                          recall=RecallConfig(exclude_behaviors=settings.exclude_behaviors),
                          diversity=DiversityConfig.from_settings(settings))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = Path(args.cache) / "replay"
    models.mkdir(parents=True, exist_ok=True)
    command = "stylestream " + " ".join(sys.argv[1:]) if sys.argv[1:] else "stylestream evaluate"
    try:
        ranker = system_training(inputs, config, models)
    except ValueError as exc:
        print(f"stylestream evaluate: {exc}", file=sys.stderr)
        return 2
    print(f"final ranker: {ranker}")
    before, after = inputs.split()
    lists = None
    if not args.offline:
        with services_for(settings) as live:
            lists = replay_live(before, live, rerank_args=["--ranker", str(ranker)],
                                show_progress=not args.no_progress, log_dir=models)
        if args.lists_out:
            Path(args.lists_out).write_text(json.dumps(lists), encoding="utf-8")
            print(args.lists_out)
    if not after:
        if args.offline:
            print("stylestream evaluate: nothing after the cut to score (give --future or "
                  "--cut)", file=sys.stderr)
            return 2
        return 0
    system = "stylestream (offline twin)" if lists is None else "stylestream live lists"
    table = offline_run(inputs, config, models, system_lists=lists, system_name=system,
                        ablations=not args.no_ablations, ranker_path=ranker)
    print(write_table(table, system, out, command))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.study == "trend":
        return _trend(args)
    if args.protocol == "replay":
        return _replay(args)
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
