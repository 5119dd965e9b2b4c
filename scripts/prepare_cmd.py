"""``stylestream prepare``: everything the rerank worker serves, built once into one folder.

    stylestream prepare [--home DIR] [--data DIR] [--retrain] [--items 300] [--users 40]
        [--history-events 6000] [--epochs 5] [--image-size 160] [--seed 0]

The deployment's init step (``docker-compose.yml``'s ``init`` service). Under ``--home``
(default ``$STYLESTREAM_HOME``) it leaves::

    catalog/             catalog.jsonl (+ stores.json): --data's catalog, else the demo catalog
    features/            feature store versions (`stylestream features`, EfficientNet-Lite0)
    model/model.pt       the fusion network (`stylestream train`)
    history.csv          the events it was trained on, when they were simulated

``--data DIR`` is an optional mounted folder: ``DIR/catalog.jsonl`` (images relative to ``DIR``)
replaces the demo catalog, and ``DIR/events.csv`` (``user_id,item_id,behavior,timestamp``)
replaces the simulated shoppers' history. Each step is skipped when its output exists, so running
it again is cheap; ``--retrain`` trains a new network and swaps ``model/model.pt`` atomically,
which a running ``stylestream rerank --checkpoint model/model.pt`` picks up without a restart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

CATALOG, FEATURES, MODEL, HISTORY = "catalog", "features", "model", "history.csv"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="build the catalog's features and train the network once (deploy init)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", default=None,
                   help="output folder (default: $STYLESTREAM_HOME)")
    p.add_argument("--data", default=None,
                   help="mounted data folder with catalog.jsonl and/or events.csv (optional)")
    p.add_argument("--retrain", action="store_true",
                   help="train a new network even when model/model.pt exists")
    p.add_argument("--items", type=int, default=300, help="demo catalog size")
    p.add_argument("--users", type=int, default=40, help="simulated shoppers of the history")
    p.add_argument("--history-events", type=int, default=6000,
                   help="simulated past events the network is trained on")
    p.add_argument("--epochs", type=int, default=5, help="training epochs")
    p.add_argument("--image-size", type=int, default=160, help="image size for the features")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def step(title: str, *args: str) -> None:
    """Run one ``stylestream`` command as its own process (what a user would type)."""
    print(f"{title}: stylestream {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "scripts.cli", *args], check=True)


def copy_catalog(data: Path, out: Path) -> int:
    """``data``'s catalog into ``out``, image paths made absolute so they still resolve."""
    from models.catalog import iter_catalog, save_catalog

    items = []
    for item in iter_catalog(data):
        if item.image and not os.path.isabs(item.image):
            item.image = str((data / item.image).resolve())
        items.append(item)
    if not items:
        raise ValueError(f"{data / 'catalog.jsonl'} holds no items")
    save_catalog(out, items)
    if (data / "stores.json").is_file():
        shutil.copyfile(data / "stores.json", out / "stores.json")
    return len(items)


def ensure_catalog(home: Path, data: Path | None, args: argparse.Namespace) -> Path:
    from models.catalog import CATALOG_FILE

    catalog = home / CATALOG
    if (catalog / CATALOG_FILE).is_file():
        print(f"catalog: {catalog} (kept)")
    elif data is not None and (data / CATALOG_FILE).is_file():
        print(f"catalog: {copy_catalog(data, catalog)} items from {data} → {catalog}")
    else:
        from models.demo_catalog import generate_demo_catalog

        generate_demo_catalog(catalog, n_items=args.items, seed=args.seed)
        print(f"catalog: demo catalog of {args.items} items → {catalog}")
    return catalog


def ensure_history(home: Path, data: Path | None, catalog: Path,
                   args: argparse.Namespace) -> Path:
    if data is not None and (data / "events.csv").is_file():
        return data / "events.csv"
    history = home / HISTORY
    if history.is_file():
        return history
    from models.catalog import load_catalog
    from models.demo_catalog import load_stores
    from models.simulation import ShopperSimulator

    stores = {s.store_id: (s.lat, s.lon) for s in load_stores(catalog).values()}
    simulator = ShopperSimulator(list(load_catalog(catalog).values()), n_users=args.users,
                                 seed=args.seed + 1, stores=stores)
    simulator.write_history(history, args.history_events)
    print(f"history: {args.history_events} simulated events of {args.users} shoppers → "
          f"{history}")
    return history


def run(args: argparse.Namespace) -> int:
    from streams.config import load_settings

    if min(args.items, args.users, args.history_events, args.epochs) < 1:
        print("stylestream prepare: --items, --users, --history-events and --epochs must be "
              ">= 1", file=sys.stderr)
        return 2
    home = Path(args.home or load_settings().home)
    data = Path(args.data) if args.data else None
    if data is not None and not data.is_dir():
        print(f"stylestream prepare: --data {data} is not a directory", file=sys.stderr)
        return 2
    home.mkdir(parents=True, exist_ok=True)
    try:
        catalog = ensure_catalog(home, data, args)
        features = home / FEATURES
        if not any(features.glob("features-*/meta.json")):
            step("encoding item images and texts", "features", "--catalog", str(catalog),
                 "--out", str(features), "--backbone", "efficientnet_lite0",
                 "--image-size", str(args.image_size), "--batch-size", "32")
        checkpoint = home / MODEL / "model.pt"
        if checkpoint.is_file() and not args.retrain:
            print(f"network: {checkpoint} (kept; --retrain trains a new one)")
        else:
            history = ensure_history(home, data, catalog, args)
            staging = home / MODEL / "next"
            step("training the fusion network", "train", "--events", str(history),
                 "--features", str(features), "--out", str(staging),
                 "--epochs", str(args.epochs), "--seed", str(args.seed))
            for name in ("loss.png", "history.json"):
                if (staging / name).is_file():
                    (staging / name).replace(home / MODEL / name)
            (staging / "model.pt").replace(checkpoint)  # atomic: readers never see half a file
            shutil.rmtree(staging, ignore_errors=True)
            print(f"network: {checkpoint}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"stylestream prepare: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"stylestream prepare: `stylestream {' '.join(exc.cmd[3:])}` failed "
              f"(exit {exc.returncode})", file=sys.stderr)
        return 1
    return 0
