"""``stylestream evaluate``: offline evaluation tables and plots (paper 000 §4).

``--study paper`` (default) runs the comparison (Table 2), the ablation (Table 3) and the
weight sensitivity (Fig. 2); ``compare`` / ``ablation`` / ``sensitivity`` run one of them;
``trend`` runs the trend-aware recommender's study (paper 002, :mod:`evaluation.trend`) into
``OUT/trend/``. Options left unset take the defaults of the study's settings, written once there
(:class:`evaluation.studies.StudySettings`, :class:`evaluation.trend.config.TrendStudyConfig`).
Heavy imports stay inside :func:`run`.

``--protocol replay`` is the protocol that decides what ships (``evaluation.replay``): the log
before a cut T through Kafka and the real workers (embedded services unless
STYLESTREAM_KAFKA/STYLESTREAM_REDIS are set), each shopper's last list scored against what the
shopper did after T, beside popularity, trending, own history, ItemCF and LightGCN.
``--offline`` runs its offline twin only (same code, no services). ``--events PATH`` replays
any log in the Taobao or H&M CSV layout (all of it, unless ``--cut``; what is read and what is
left out: :mod:`evaluation.replay_input`), ``--future PATH`` scores the lists against a later
log, ``--lists-out PATH`` writes every shopper's final list as JSON. A log too short to train
the final ranker is served without it.
"""

from __future__ import annotations

import argparse
import sys

from evaluation.trend.config import TrendStudyConfig  # a dataclass: loads no model code

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
    p.add_argument("--dataset", choices=("taobao", "hm"), default=None)
    p.add_argument("--level", choices=("category", "item"), default=None,
                   help="Taobao only: rank categories (default) or items")
    p.add_argument("--protocol", choices=("peruser", "temporal", "replay"), default=None,
                   help="peruser (the default): each user's chronological 80/20; temporal: "
                        "global cut at the 80%% quantile of event times; replay: the log before "
                        "a cut through the live workers, scored on what shoppers did next")
    p.add_argument("--cut", default=None,
                   help="replay: the cut T (epoch s or ISO-8601; default: Taobao the start of "
                        "its last day, H&M of its last month; with --events, after its end)")
    p.add_argument("--horizon-days", type=float, default=None,
                   help="replay: days after T that are scored, and the spacing of the ranker's "
                        "training cuts (default: 1 for Taobao, 30 otherwise)")
    p.add_argument("--events", default=None,
                   help="replay: a log in the Taobao or H&M CSV layout instead of --dataset "
                        "(with or without a header, any column order, gzip read; unreadable "
                        "rows are left out and counted)")
    p.add_argument("--future", default=None,
                   help="replay: a later log (same layout) to score the lists against")
    p.add_argument("--lists-out", default=None,
                   help="replay: write every shopper's final list here as JSON "
                        "{user_id: [item_id, ...]} (with --offline: the offline twin's)")
    p.add_argument("--offline", action="store_true",
                   help="replay: the offline twin only (no Kafka, Redis or workers)")
    p.add_argument("--no-ablations", action="store_true",
                   help="replay: skip the ablation rows")
    p.add_argument("--no-decay-search", action="store_true",
                   help="replay: keep STYLESTREAM_DECAY_PER_DAY instead of choosing λ among "
                        "0.05, 0.01 and 0 on the validation cut T − horizon")
    p.add_argument("--no-explore-search", action="store_true",
                   help="replay: keep STYLESTREAM_EXPLORE_WEIGHT instead of choosing the "
                        "repeat/explore weight w on the validation cut T − horizon")
    p.add_argument("--ranking", choices=("full", "sampled"), default=None,
                   help="full: all items, training items masked; sampled: "
                        "1 positive vs 99 negatives")
    p.add_argument("--seeds", type=_positive, default=None,
                   help="repetitions over seeds (default: the study's own)")
    p.add_argument("--max-users", type=_positive, default=None,
                   help="keep the first N users (sorted ids), for CI-sized runs")
    p.add_argument("--epochs", type=_positive, default=None,
                   help="epochs of the neural models")
    p.add_argument("--dim", type=_positive, default=None, help="embedding size")
    p.add_argument("--fusion-epochs", type=_positive, default=None,
                   help="most epochs of the fusion network (early stopping)")
    p.add_argument("--fusion-loss", choices=("bpr", "mse", "bce"), default=None,
                   help="loss of the proposed system's fusion network; with "
                        "bpr/bce a row trained with the paper's MSE on S (Eq. 21) is added for "
                        "comparison")
    p.add_argument("--cache", default=None,
                   help="where item feature stores built for evaluation are kept")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of Random,Pop,ItemCF,BPR-MF,NeuMF,VBPR,LightGCN")
    p.add_argument("--study", choices=STUDY_CHOICES, default="paper")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--data", default=None, help="data root (default: $STYLESTREAM_DATA)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    trend = p.add_argument_group("trend study (--study trend)")
    trend.add_argument("--items", type=_positive, default=None,
                       help="fashion_products items with images in the catalog (default "
                            f"{TrendStudyConfig.items})")
    trend.add_argument("--image-size", type=_positive, default=None,
                       help="image side in px for the CNNs (default "
                            f"{TrendStudyConfig.image_size})")
    trend.add_argument("--users", type=_positive, default=None,
                       help=f"simulated shoppers per year (default {TrendStudyConfig.users})")
    trend.add_argument("--backbones", default=None,
                       help="comma-separated, of "
                            f"{','.join(TrendStudyConfig.backbones)} (default all)")
    trend.add_argument("--main-backbone", default=None,
                       help="backbone of Tables 2-3 (default "
                            f"{TrendStudyConfig.main_backbone})")
    trend.add_argument("--weights-dir", default=None,
                       help="holds <backbone>.pth state dicts (default: untrained CNNs)")
    trend.add_argument("--no-mask", action="store_true", help="skip garment masking")
    p.set_defaults(func=run)


def trend_config(args: argparse.Namespace) -> TrendStudyConfig:
    """The trend study's settings: the options given, the config's defaults for the rest."""
    from pathlib import Path

    from evaluation.trend.study import resolve_data

    given = {"items": args.items, "image_size": args.image_size, "users": args.users,
             "seeds": args.seeds, "main_backbone": args.main_backbone,
             "backbones": tuple(b.strip() for b in args.backbones.split(",") if b.strip())
             if args.backbones else None,
             "weights_dir": Path(args.weights_dir) if args.weights_dir else None,
             "out": Path(args.out) / "trend" if args.out else None}
    return TrendStudyConfig(data=resolve_data(args.data), mask=not args.no_mask,
                            progress=not args.no_progress,
                            **{k: v for k, v in given.items() if v is not None})


def _trend(args: argparse.Namespace) -> list:
    import os

    import torch

    from evaluation.trend.study import run_study

    cfg = trend_config(args)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return run_study(cfg)


def _paper(args: argparse.Namespace) -> list:
    from evaluation.studies import STUDIES, StudySettings
    from evaluation.studies import run as run_studies
    from models.baselines import BASELINES

    models = None
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in models if m not in BASELINES]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; known: {list(BASELINES)}")
    given = {"dataset": args.dataset, "level": args.level, "protocol": args.protocol,
             "ranking": args.ranking, "seeds": args.seeds, "epochs": args.epochs,
             "dim": args.dim, "fusion_epochs": args.fusion_epochs,
             "fusion_loss": args.fusion_loss, "cache": args.cache, "out": args.out}
    settings = StudySettings(
        max_users=args.max_users, models=models,
        studies=STUDIES if args.study == "paper" else (args.study,),
        data_root=args.data, progress=not args.no_progress,
        **{k: v for k, v in given.items() if v is not None})
    return run_studies(settings)


def _replay(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from evaluation.list_diversity import replay_dissimilarity
    from evaluation.live_replay import replay_live
    from evaluation.replay import (
        NoRankerData,
        ReplayInputs,
        SystemConfig,
        default_cut,
        default_step,
        every_shopper_lists,
        offline_run,
        parse_time,
        select_decay,
        system_training,
        write_table,
    )
    from evaluation.replay_content import (
        build_content,
        content_ablations,
        content_note,
        has_content,
        with_content,
    )
    from evaluation.replay_input import read_future, read_log
    from evaluation.studies import StudySettings
    from models.datasets import DatasetError, load
    from scripts.embedded import services_for
    from serving.diversity import DiversityConfig
    from serving.recall import RecallConfig
    from streams.config import load_settings

    settings = load_settings()
    defaults = StudySettings()  # what options left unset mean
    level = args.level or defaults.level
    if args.lists_out:  # before the long run: a lists file that cannot be written fails now
        target = Path(args.lists_out)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise IsADirectoryError("it is a directory")
            if not os.access(target.parent, os.W_OK):
                raise PermissionError(f"{target.parent} is not writable")
        except OSError as exc:
            print(f"stylestream evaluate: cannot write --lists-out {target}: {exc}",
                  file=sys.stderr)
            return 2
    try:
        if args.events:
            log_in = read_log(args.events, level, settings.limits)
            dataset, events = log_in.dataset, log_in.events
            future_in = read_future(args.future, level, settings.limits) if args.future else None
            future = future_in.events if future_in else []
            if future_in and future and future_in.dataset != dataset:
                raise DatasetError(f"{args.future} is in the {future_in.dataset} layout, "
                                   f"{args.events} in the {dataset} one")
            for read, path in ((log_in, args.events), (future_in, args.future)):
                if read is not None and read.note(path):
                    print(f"note: {read.note(path)}", file=sys.stderr)
            cut = parse_time(args.cut) if args.cut else max(e.t for e in events) + 1.0
        else:
            dataset = args.dataset or defaults.dataset
            events = load(dataset, args.data, level=level, max_users=args.max_users)
            future = None
            cut = parse_time(args.cut) if args.cut else default_cut(dataset, events)
    except (DatasetError, ValueError) as exc:
        print(f"stylestream evaluate: {exc}", file=sys.stderr)
        return 2
    step = args.horizon_days * 86400.0 if args.horizon_days else default_step(dataset)
    inputs = ReplayInputs(dataset, level if dataset == "taobao" else "item", events, cut,
                          step, future_events=future)
    config = SystemConfig(decay=settings.decay,
                          recall=RecallConfig(exclude_behaviors=settings.exclude_behaviors),
                          diversity=DiversityConfig.from_settings(settings))
    out = Path(args.out or defaults.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache or defaults.cache)
    models = cache / "replay"
    models.mkdir(parents=True, exist_ok=True)
    command = "stylestream " + " ".join(sys.argv[1:]) if sys.argv[1:] else "stylestream evaluate"
    try:
        content = build_content(inputs, config, root=args.data, cache=cache,
                                progress=not args.no_progress)
    except (DatasetError, ValueError) as exc:
        if not args.events:
            print(f"stylestream evaluate: {exc}", file=sys.stderr)
            return 2
        print(f"note: replaying without item content ({exc})", file=sys.stderr)
        content = None
    config = with_content(config, content)
    ranker: Path | None
    try:
        if args.no_decay_search:
            ranker, chosen = system_training(inputs, config, models), None
        else:
            config, ranker, chosen = select_decay(inputs, config, models)
    except NoRankerData as exc:
        print(f"note: serving without the final ranker, the log is too short to train it "
              f"({exc})", file=sys.stderr)
        ranker, chosen = None, None
    except ValueError as exc:
        print(f"stylestream evaluate: {exc}", file=sys.stderr)
        return 2
    lam = config.decay.decay_per_day
    print(f"final ranker: {ranker} (decay {lam:g}/day"
          + (f", chosen on the validation cut: {chosen['validation']})" if chosen else ")"))
    tradeoff = None
    if not args.no_explore_search and ranker is not None:
        from dataclasses import replace

        from evaluation.explore_tradeoff import explore_tradeoff, write_tradeoff

        tradeoff = explore_tradeoff(inputs, config, ranker, reference_decay=settings.decay)
        config = replace(config, diversity=replace(config.diversity,
                                                   explore_weight=tradeoff["chosen"]))
        print(write_tradeoff(tradeoff, out, inputs.label))
    explore_w = config.diversity.explore_weight
    before, after = inputs.split()
    lists = None
    if not args.offline:
        serve = [*(["--ranker", str(ranker)] if ranker else []),
                 *(content.rerank_args() if content else [])]
        try:
            with services_for(settings) as live:
                lists = replay_live(before, live, rerank_args=serve,
                                    env={"STYLESTREAM_DECAY_PER_DAY": repr(lam),
                                         "STYLESTREAM_EXPLORE_WEIGHT": repr(explore_w)},
                                    show_progress=not args.no_progress, log_dir=models)
        except RuntimeError as exc:  # a worker exited, or the lists stopped coming
            print(f"stylestream evaluate: live replay failed: {exc}", file=sys.stderr)
            return 1
        if args.lists_out:
            Path(args.lists_out).write_text(json.dumps(lists), encoding="utf-8")
            print(args.lists_out)
    elif args.lists_out:
        twin = every_shopper_lists(before, inputs.cut, config, ranker)
        Path(args.lists_out).write_text(json.dumps(twin), encoding="utf-8")
        print(args.lists_out)
    if not after:
        if args.offline and not args.lists_out:
            print("stylestream evaluate: nothing after the cut to score (give --future or "
                  "--cut)", file=sys.stderr)
            return 2
        print("note: nothing after the cut to score; no table written", file=sys.stderr)
        return 0
    shoppers = {e.user for e in before}
    if not any(e.user in shoppers for e in after):
        print("note: no shopper of the log has an event after the cut; no table written",
              file=sys.stderr)
        return 0
    system = "stylestream (offline twin)" if lists is None else "stylestream live lists"
    table = offline_run(inputs, config, models, system_lists=lists, system_name=system,
                        ablations=not args.no_ablations, ranker_path=ranker,
                        no_ranker=ranker is None,
                        reference_decay=settings.decay,
                        dissimilarity=replay_dissimilarity(dataset, inputs.level, before,
                                                           args.data, args.events)[0],
                        extra_ablations=lambda users: content_ablations(
                            inputs, config, models, users, fusion_decay=settings.decay,
                            root=args.data, cache=cache, progress=not args.no_progress))
    table.notes.append(content_note(dataset) if content or not has_content(dataset) else
                       "Item content: none (no articles for this log in the data directory).")
    table.info["decay λ per day"] = (f"{lam:g}, chosen on the validation cut T − horizon "
                                    f"(HR@5, NDCG@5 per λ: {chosen['validation']})"
                                    if chosen else f"{lam:g} (STYLESTREAM_DECAY_PER_DAY)")
    if tradeoff is not None:  # the same sweep after T, for reading (w is already chosen)
        from evaluation.explore_tradeoff import after_cut

        tradeoff["after_cut"] = after_cut(inputs, config, ranker)
        write_tradeoff(tradeoff, out, inputs.label)
    table.info["ILD@5 dissimilarity"] = replay_dissimilarity(
        dataset, inputs.level, [], args.data, args.events)[1]
    table.info["explore weight w"] = (
        f"{explore_w:g}, chosen on the validation cut T − horizon ({tradeoff['rule']}; "
        f"replay_{inputs.label}_explore.png)" if tradeoff else
        f"{explore_w:g} (STYLESTREAM_EXPLORE_WEIGHT)")
    print(write_table(table, system, out, command))
    return 0


def run(args: argparse.Namespace) -> int:
    from models.datasets import DatasetError

    if args.study != "trend" and args.protocol == "replay":
        return _replay(args)

    try:  # the trend study's StudyError is a ValueError
        written = _trend(args) if args.study == "trend" else _paper(args)
    except (DatasetError, ValueError) as exc:
        print(f"stylestream evaluate: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
