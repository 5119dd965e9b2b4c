"""``stylestream simulate``: trend-aware synthetic shoppers (paper 002 §3.3) producing events.

Events come from :class:`models.simulation.ShopperSimulator` over a catalog directory and are
sent to ``behavior-events`` (key = user id) at a fixed offered rate. ``--wall-clock`` stamps each
event with the time it is sent (live traffic, as the demo does); otherwise the simulator's own
clock is kept (a replayable log).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="produce trend-aware simulated shopper events to Kafka")
    p.add_argument("--catalog", required=True, help="catalog directory (see `catalog`)")
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--rate", type=float, default=200.0, help="events per second offered")
    p.add_argument("--events", type=int, default=None, help="stop after N events")
    p.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    p.add_argument("--wall-clock", action="store_true",
                   help="stamp events with the send time instead of the simulated time")
    p.add_argument("--bad-share", type=float, default=0.0,
                   help="share of deliberately malformed events (dead-letter testing)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


@dataclass
class ProduceStats:
    sent: int = 0
    malformed: int = 0
    started: float = 0.0


def malformed_event(rng: random.Random, now: float) -> bytes:
    """One of three contract violations: broken JSON, unknown behaviour, milliseconds."""
    return rng.choice([
        b"{this is not json",
        json.dumps({"event_id": f"bad-{rng.random()}", "user_id": "u-x", "item_id": "x",
                    "behavior": "teleport", "timestamp": now}).encode(),
        json.dumps({"event_id": f"bad-{rng.random()}", "user_id": "u-x", "item_id": "x",
                    "behavior": "view", "timestamp": now * 1000}).encode(),
    ])


def produce_paced(producer, topic: str, events: Iterator[dict], rate: float,
                  stop: threading.Event, stats: ProduceStats, max_events: int | None = None,
                  seconds: float | None = None, wall_clock: bool = True,
                  bad_share: float = 0.0, seed: int = 0,
                  on_tick: Callable[[ProduceStats], None] | None = None) -> ProduceStats:
    """Send ``events`` at ``rate`` per second until ``stop``, ``max_events`` or ``seconds``."""
    rng = random.Random(seed)
    stats.started = stats.started or time.time()
    while not stop.is_set():
        now = time.time()
        elapsed = now - stats.started
        total = stats.sent + stats.malformed
        if (seconds is not None and elapsed >= seconds) or (
                max_events is not None and total >= max_events):
            break
        due = int(elapsed * rate) - total
        if max_events is not None:
            due = min(due, max_events - total)
        for _ in range(max(0, min(due, 1000))):
            if bad_share and rng.random() < bad_share:
                producer.send(topic, key=b"u-x", value=malformed_event(rng, now))
                stats.malformed += 1
                continue
            try:
                event = next(events)
            except StopIteration:
                stop.set()
                break
            if wall_clock:
                event["timestamp"] = time.time()
            producer.send(topic, key=str(event["user_id"]).encode(),
                          value=json.dumps(event).encode())
            stats.sent += 1
        if on_tick is not None:
            on_tick(stats)
        time.sleep(0.005)
    producer.flush()
    return stats


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from models.catalog import load_catalog
    from models.demo_catalog import load_stores
    from models.simulation import ShopperSimulator
    from streams.config import load_settings
    from streams.security import kafka_client_kwargs

    settings = load_settings()
    if args.events is None and args.seconds is None:
        print("stylestream simulate: give --events N or --seconds S", file=sys.stderr)
        return 2
    catalog = load_catalog(args.catalog)
    stores = {s.store_id: (s.lat, s.lon) for s in load_stores(args.catalog).values()}
    simulator = ShopperSimulator(list(catalog.values()), n_users=args.users, seed=args.seed,
                                 stores=stores, weights=settings.decay.weights)
    from streams.probes import preflight

    preflight(settings, topics=[settings.topics.events])
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5,
                             max_block_ms=int(settings.service_timeout * 1000),
                             **kafka_client_kwargs(settings, "kafka-python"))
    stats = produce_paced(producer, settings.topics.events, simulator.events(10**12),
                          args.rate, threading.Event(), ProduceStats(), args.events,
                          args.seconds, args.wall_clock, args.bad_share, args.seed)
    producer.close()
    print(f"sent {stats.sent} events ({stats.malformed} malformed) in "
          f"{time.time() - stats.started:.1f}s")
    return 0
