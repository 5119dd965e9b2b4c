"""``stylestream up`` / ``stylestream down``: embedded Kafka (Tansu) + Redis on loopback."""

from __future__ import annotations

import argparse
import signal
import time

from scripts.embedded import create_topics, start_services, stop_detached, write_state
from streams.config import load_settings
from streams.security import kafka_client_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start embedded Kafka + Redis on loopback and print their URLs")
    up.add_argument("--detach", action="store_true",
                    help="leave them running in the background; `stylestream down` stops them")
    up.set_defaults(func=run_up)
    down = sub.add_parser("down", help="stop what `up --detach` started")
    down.set_defaults(func=run_down)
    topics = sub.add_parser("topics", help="create the contract's topics on STYLESTREAM_KAFKA "
                                           "(partition count: STYLESTREAM_PARTITIONS)")
    topics.set_defaults(func=run_topics)


def run_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.detach:
        stop_detached(settings.home)  # never leave an older pair orphaned
    svc = start_services(settings.partitions, settings.topics, detach=args.detach)
    for name, value in svc.env().items():
        print(f"export {name}={value}")
    if args.detach:
        path = write_state(settings.home, svc)
        print(f"# running in the background (state in {path}); `stylestream down` stops them",
              flush=True)
        return 0
    print("# running; Ctrl-C stops both", flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        svc.stop()
    return 0


def run_down(args: argparse.Namespace) -> int:
    stopped = stop_detached(load_settings().home)
    print(f"stopped {len(stopped)} process(es)" if stopped else "nothing was running")
    return 0


def run_topics(args: argparse.Namespace) -> int:
    from streams.probes import preflight

    settings = load_settings()
    partitions = settings.topics.partitions(settings.partitions)
    preflight(settings)  # unreachable or silent broker: one clear line, at once
    create_topics(settings.kafka_bootstrap, partitions,
                  **kafka_client_kwargs(settings, "kafka-python"))
    print("topics ready: " + ", ".join(f"{t} ({n})" for t, n in partitions.items()))
    return 0
