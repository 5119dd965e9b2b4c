"""``stylestream demo``: the main job, end to end on one machine.

Starts embedded Kafka + Redis (unless ``STYLESTREAM_KAFKA``/``STYLESTREAM_REDIS`` name real
ones), generates the demo catalog, runs the ingest and rerank workers as their own processes,
feeds them trend-aware simulated shoppers (paper 002 §3.3) — with a small share of deliberately
malformed events, to show the dead-letter path — and shows live Top-5 lists with reasons and a
metrics summary until Ctrl-C or ``--seconds N``.

Simulated events are stamped with the wall clock when sent, so freshness (publish time − event
time) is the real end-to-end latency of the running system.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run everything with simulated shoppers and show live Top-5s")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after N seconds (default: run until Ctrl-C)")
    p.add_argument("--users", type=int, default=40, help="simulated shoppers")
    p.add_argument("--items", type=int, default=300, help="demo catalog size")
    p.add_argument("--rate", type=float, default=150.0, help="events per second offered")
    p.add_argument("--bad-share", type=float, default=0.01,
                   help="share of deliberately malformed events (dead-letter demo)")
    p.add_argument("--show", type=int, default=3, help="shoppers shown on screen")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-model", action="store_true",
                   help="skip features + training: rank with co-visitation and the rules only")
    p.add_argument("--history-events", type=int, default=6000,
                   help="simulated past events the fusion network is trained on")
    p.add_argument("--epochs", type=int, default=5, help="fusion network training epochs")
    p.add_argument("--web-port", type=int, default=None,
                   help="port of the live web view (default: a free one; its URL is printed)")
    p.add_argument("--home", default=None, help="working directory (default: $STYLESTREAM_HOME "
                                                "or ./var)")
    p.set_defaults(func=run)


@dataclass
class Board:
    """What the screen shows, fed by the recommendations consumer thread."""

    latest: dict[str, dict] = field(default_factory=dict)
    freshness: deque = field(default_factory=lambda: deque(maxlen=5000))
    history: deque = field(default_factory=lambda: deque(maxlen=500_000))
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: every list received, one JSON line each (``<home>/lists.jsonl``), when set
    record: IO[str] | None = None

    def add(self, message: dict, received_at: float) -> None:
        with self.lock:
            if self.record is not None:
                self.record.write(json.dumps(message) + "\n")
            self.latest[message["user_id"]] = message
            lag = received_at - message["source_event_time"]
            self.freshness.append(lag)
            self.history.append((received_at, lag))
            self.received += 1

    def percentile(self, q: float) -> float | None:
        with self.lock:
            values = sorted(self.freshness)
        return values[min(len(values) - 1, int(q * len(values)))] if values else None


def consume_recommendations(bootstrap: str, topic: str, board: Board,
                            stop: threading.Event, **client_kwargs: Any) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                             consumer_timeout_ms=200, fetch_max_wait_ms=10, **client_kwargs)
    try:
        while not stop.is_set():
            for record in consumer:
                try:
                    board.add(json.loads(record.value), time.time())
                except (ValueError, KeyError):
                    continue
    finally:
        consumer.close()


WARMUP_SECONDS = 90.0


def cli_step(title: str, *args: str) -> None:
    """Run one ``stylestream`` command as its own process, as a user would."""
    print(f"{title}: stylestream {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "scripts.cli", *args], check=True)


def prepare_model(home: Path, catalog_dir: Path, catalog: dict, stores: dict,
                  args: argparse.Namespace) -> tuple[Path, Path]:
    """Features of the demo catalog and a fusion network trained on simulated past shoppers.

    Both are cached under ``home``; delete them to rebuild. The history comes from the same
    trend-aware simulator as the live traffic (other seed), so the live shoppers are known
    users to the network (ID embeddings, Eq. 4) and the profiles carry over.
    """

    from models.simulation import ShopperSimulator

    features = home / "features"
    if not any(features.glob("features-*/meta.json")):
        cli_step("encoding item images and texts", "features", "--catalog", str(catalog_dir),
                 "--out", str(features), "--backbone", "efficientnet_lite0",
                 "--image-size", "160", "--batch-size", "32")
    checkpoint = home / "model" / "model.pt"
    if not checkpoint.exists():
        history = home / "history.csv"
        simulator = ShopperSimulator(list(catalog.values()), n_users=args.users,
                                     seed=args.seed + 1, stores=stores)
        simulator.write_history(history, args.history_events)
        cli_step("training the fusion network on simulated history", "train", "--events",
                 str(history), "--features", str(features), "--out", str(checkpoint.parent),
                 "--epochs", str(args.epochs))
    return features, checkpoint


def wait_until_serving(producer, topic: str, board: Board, workers: list[subprocess.Popen],
                       stop: threading.Event) -> bool:
    """Send one warm-up event and wait for its list, so the clock starts on a live pipeline."""
    producer.send(topic, key=b"warm-up", value=json.dumps({
        "event_id": f"warm-up-{time.time()}", "user_id": "warm-up", "item_id": "warm-up",
        "behavior": "view", "timestamp": time.time()}).encode())
    producer.flush()
    deadline = time.time() + WARMUP_SECONDS
    while time.time() < deadline and not stop.is_set():
        if any(w.poll() is not None for w in workers):
            return False
        with board.lock:
            if "warm-up" in board.latest:
                board.latest.clear()
                board.freshness.clear()
                board.history.clear()
                board.received = 0
                return True
        time.sleep(0.1)
    return False


def render(board: Board, titles: dict[str, str], sent: int, bad: int, elapsed: float,
           show: int, clear: bool) -> str:
    lines = []
    if clear:
        lines.append("\x1b[2J\x1b[H")
    p50, p99 = board.percentile(0.5), board.percentile(0.99)
    fresh = (f"freshness p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
             if p50 is not None else "freshness: waiting for the first list")
    lines.append(f"stylestream demo — {elapsed:5.1f}s | events sent {sent} "
                 f"({sent / max(elapsed, 1e-9):.0f}/s), malformed→DLQ {bad} | lists "
                 f"{board.received} for {len(board.latest)} shoppers | {fresh}")
    with board.lock:
        recent = sorted(board.latest.values(), key=lambda m: -m["generated_at"])[:show]
    for msg in recent:
        lines.append(f"\n  Top-5 for {msg['user_id']}  (model {msg['model_version']})")
        for rank, item in enumerate(msg["items"], 1):
            title = titles.get(item["item_id"], item["item_id"])
            lines.append(f"   {rank}. {title:<38.38} {item['score']:9.3f}  "
                         f"{'; '.join(item['reasons'])[:90]}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from models.catalog import load_catalog
    from models.demo_catalog import generate_demo_catalog, load_stores
    from models.simulation import ShopperSimulator
    from scripts.embedded import free_port, services_for, stop_processes
    from scripts.simulate_cmd import ProduceStats, produce_paced
    from streams.config import load_settings
    from streams.redact import redact
    from streams.security import kafka_client_kwargs

    settings = load_settings()
    if settings.kafka_url and settings.redis_url:
        from streams.probes import preflight

        preflight(settings, redis=True)  # before minutes of model preparation
    home = Path(args.home or settings.home)
    catalog_dir = home / "demo-catalog"
    if not (catalog_dir / "catalog.jsonl").exists():
        print(f"drawing a demo catalog of {args.items} items into {catalog_dir} ...", flush=True)
        generate_demo_catalog(catalog_dir, n_items=args.items, seed=args.seed)
    catalog = load_catalog(catalog_dir)
    titles = {i: item.title for i, item in catalog.items()}
    stores = {s.store_id: (s.lat, s.lon) for s in load_stores(catalog_dir).values()}
    model_args: list[str] = []
    if not args.no_model:
        features, checkpoint = prepare_model(home, catalog_dir, catalog, stores, args)
        model_args = ["--features", str(features), "--checkpoint", str(checkpoint)]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with services_for(settings) as live:
        env = dict(os.environ, STYLESTREAM_KAFKA=live.kafka_url or "",
                   STYLESTREAM_REDIS=live.redis_url or "")
        ports = {"stream": free_port(), "rerank": free_port(),
                 "web": args.web_port or free_port()}
        logs = home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        commands = {"stream": ["stream", "--metrics-port", str(ports["stream"])],
                    "rerank": ["rerank", "--catalog", str(catalog_dir), *model_args,
                               "--metrics-port", str(ports["rerank"])],
                    "web": ["web", "--catalog", str(catalog_dir), "--port", str(ports["web"])]}
        workers = [subprocess.Popen([sys.executable, "-m", "scripts.cli", *cmd], env=env,
                                    stdout=(logs / f"{name}.log").open("wb"),
                                    stderr=subprocess.STDOUT)
                   for name, cmd in commands.items()]
        print(f"Kafka {live.kafka_bootstrap}  Redis {redact(live.redis)}\nmetrics: "
              f"http://127.0.0.1:{ports['stream']}/metrics (ingest), "
              f"http://127.0.0.1:{ports['rerank']}/metrics (rerank); worker logs in {logs}\n"
              f"live web view: http://127.0.0.1:{ports['web']}/", flush=True)
        board = Board(record=(home / "lists.jsonl").open("w", encoding="utf-8"))
        reader = threading.Thread(target=consume_recommendations, daemon=True, args=(
            live.kafka_bootstrap, live.topics.recommendations, board, stop),
            kwargs=kafka_client_kwargs(live, "kafka-python"))
        reader.start()
        producer = KafkaProducer(bootstrap_servers=live.kafka_bootstrap, linger_ms=5,
                                 **kafka_client_kwargs(live, "kafka-python"))
        if not wait_until_serving(producer, live.topics.events, board, workers, stop):
            print(f"stylestream demo: the workers did not serve a first list within "
                  f"{WARMUP_SECONDS:.0f}s; see {logs}", file=sys.stderr)
            stop.set()
        simulator = ShopperSimulator(list(catalog.values()), n_users=args.users, seed=args.seed,
                                     stores=stores, weights=live.decay.weights)
        stats = ProduceStats(started=time.time())
        clear = sys.stdout.isatty()
        next_frame = [stats.started]

        timeline: list[tuple[float, int]] = []

        def tick(stats: ProduceStats) -> None:
            now = time.time()
            if not timeline or now - timeline[-1][0] >= 0.5:
                timeline.append((now, stats.sent))
            if any(w.poll() is not None for w in workers):
                print("a worker exited unexpectedly; stopping", file=sys.stderr)
                stop.set()
            if now >= next_frame[0]:
                print(render(board, titles, stats.sent, stats.malformed, now - stats.started,
                             args.show, clear), flush=True)
                next_frame[0] = now + (1.0 if clear else 5.0)

        try:
            produce_paced(producer, live.topics.events, simulator.events(10**12), args.rate,
                          stop, stats, seconds=args.seconds, bad_share=args.bad_share,
                          seed=args.seed, on_tick=tick)
        except KeyboardInterrupt:
            pass
        finally:
            producer.close()
            time.sleep(1.0)  # let the last lists arrive
            stop.set()
            stop_processes(*workers)
            reader.join(timeout=5)
        print(render(board, titles, stats.sent, stats.malformed, time.time() - stats.started,
                     args.show, False))
    if board.received:
        from scripts.demo_dashboard import save_dashboard

        with board.lock:
            newest = max(board.latest.values(), key=lambda m: m["generated_at"])
            samples = list(board.history)
        picture = save_dashboard(home / "dashboard.png", stats.started, time.time(), timeline,
                                 samples, newest, catalog, catalog_dir)
        print(f"dashboard picture: {picture}")
    with board.lock:
        if board.record is not None:
            board.record.close()
            board.record = None
    print(f"every list received: {home / 'lists.jsonl'}")
    if board.received == 0:
        print("stylestream demo: no recommendation list arrived", file=sys.stderr)
        return 1
    print(f"\ndone: {board.received} Top-5 lists for {len(board.latest)} shoppers.")
    return 0
