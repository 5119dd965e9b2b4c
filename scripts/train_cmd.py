"""``stylestream train``: train the fusion ranker on decayed multi-behaviour scores.

    stylestream train (--events CSV | --dataset hm) --features DIR --out DIR [--catalog DIR]
        [--epochs 50] [--lr 1e-4] [--batch-size 128] [--patience 5] [--negatives 4]
        [--loss mse|bpr|bce] [--val-fraction 0.2] [--at T] [--max-users N] [--data DIR]

Targets are ``S(u,i,T)`` of Eq. 1–3 built by ``streams.decay.score_matrix`` (weights and λ from
``STYLESTREAM_WEIGHTS`` / ``STYLESTREAM_DECAY_PER_DAY`` or ``--decay-per-day``) at ``--at``
(default: the last event). ``--events``: CSV with ``user_id,item_id,behavior,timestamp``
(behaviour and timestamp as in the event contract). ``--dataset hm``: H&M purchases from
``$STYLESTREAM_DATA/hm/transactions.csv`` (every row a ``purchase``).

Item features come from the newest store in ``--features``. When there is none, one is built
with the packaged pretrained EfficientNet-Lite0 and MiniLM from ``--catalog`` (or, for
``--dataset hm``, from the H&M articles bought in the loaded transactions, imported into
``<out>/catalog``; images stay in the data directory).

Writes ``<out>/model.pt`` (checkpoint), ``<out>/loss.png``, ``<out>/history.json`` and a new
store version in ``--features`` whose fused vectors come from the trained network.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the fusion network", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", help="CSV of behaviour events")
    source.add_argument("--dataset", choices=("hm",), help="a public dataset of STYLESTREAM_DATA")
    parser.add_argument("--features", required=True, help="feature store folder")
    parser.add_argument("--out", required=True, help="output folder for the model")
    parser.add_argument("--catalog", default=None, help="catalog to encode if no store exists")
    parser.add_argument("--data", default=None, help="data directory (default $STYLESTREAM_DATA)")
    parser.add_argument("--max-users", type=int, default=None, help="hm: first N customers")
    parser.add_argument("--at", default=None, help="score time T (epoch s or ISO-8601)")
    parser.add_argument("--decay-per-day", type=float, default=None, help="λ (default 0.05)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--loss", choices=("mse", "bpr", "bce"), default="mse",
                        help="mse: the paper's regression on S (Eq. 21); bpr ranks far better "
                             "on H&M purchases, where most S are ~0 (docs/results)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def read_events_csv(path: str | Path) -> list[tuple[str, str, str, float]]:
    """``(user, item, behavior, t)`` rows of an events CSV, validated like stream events."""
    from streams.contract import InvalidEvent, validate_event

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"events file {path} does not exist")
    events = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"user_id", "item_id", "behavior", "timestamp"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, 2):
            row = {k: v for k, v in row.items() if v not in (None, "")}
            row.setdefault("event_id", str(line))
            try:
                event = validate_event(row, now=math.inf)
            except InvalidEvent as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
            events.append((event.user_id, event.item_id, event.behavior, event.timestamp))
    if not events:
        raise ValueError(f"{path} holds no events")
    return events


def _hm_events(args: argparse.Namespace) -> list[tuple[str, str, str, float]]:
    from models.datasets import load_hm

    return [(e.user, e.item, e.behavior, e.t) for e in load_hm(args.data,
                                                             max_users=args.max_users)]


def _ensure_store(args: argparse.Namespace, items: set[str]):
    from models.feature_store import ExtractConfig, FeatureStore, build_store

    try:
        return FeatureStore.load(args.features)
    except FileNotFoundError:
        pass
    catalog = args.catalog
    if catalog is None and args.dataset == "hm":
        from models.catalog import save_catalog
        from models.catalog_import import import_catalog
        from models.datasets import data_dir

        report = import_catalog("hm", data_dir(args.data))
        catalog = str(Path(args.out) / "catalog")
        save_catalog(catalog, [item for item in report.items if item.item_id in items])
    if catalog is None:
        raise FileNotFoundError(f"no feature store in {args.features}: run `stylestream "
                                "features` or pass --catalog")
    print(f"no feature store in {args.features}: encoding {catalog} (efficientnet_lite0)")
    return build_store(catalog, args.features, ExtractConfig(backbone="efficientnet_lite0",
                                                             weights="imagenet"))


def run(args: argparse.Namespace) -> int:
    from models.datasets import DatasetError
    from models.feature_store import new_version
    from models.training import TrainConfig, save_result, train
    from streams.config import load_settings
    from streams.contract import InvalidEvent, parse_timestamp
    from streams.decay import score_matrix

    settings = load_settings()
    decay = args.decay_per_day if args.decay_per_day is not None else \
        settings.decay.decay_per_day
    try:
        config = TrainConfig(lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                             patience=args.patience, negatives=args.negatives, loss=args.loss,
                             val_fraction=args.val_fraction, seed=args.seed)
        events = read_events_csv(args.events) if args.events else _hm_events(args)
        at = parse_timestamp(args.at, now=math.inf) if args.at else max(e[3] for e in events)
        matrix = score_matrix(events, at, settings.decay.weights, decay)
        store = _ensure_store(args, {e[1] for e in events})
        result = train(matrix, store.features(), config)
    except (FileNotFoundError, ValueError, DatasetError, InvalidEvent) as exc:
        print(f"stylestream train: {exc}", file=sys.stderr)
        return 2
    version = f"fusion-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    checkpoint = save_result(result, args.out, version=version, extra={
        "feature_store": store.version, "events": len(events), "at": at, "decay_per_day": decay,
        "loss": config.loss})
    store.refuse(result.model, fused_by=version)
    store_version, store_path = new_version(args.features)
    store.meta.update(version=store_version, refused_from=store.version)
    refused = store.save(store_path)
    print(f"{version}: {len(result.users)} users, {len(events)} events, best epoch "
          f"{result.best_epoch} (val {result.best_val:.5f}); {result.dropped_pairs} pairs "
          f"without item features left out")
    print(f"checkpoint → {checkpoint}; loss curve → {Path(args.out) / 'loss.png'}; "
          f"re-fused store → {refused}")
    return 0
