"""``stylestream stream``: the Faust ingest worker (behaviour events → Redis → rec-refresh)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from scripts.logs import add_log_format_argument
from streams.config import Settings, load_settings

log = logging.getLogger(__name__)


def add_service_arguments(p: argparse.ArgumentParser) -> None:
    """``--metrics-port``, ``--metrics-host`` and ``--wait``, shared by both workers."""
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics, /healthz and /readyz on this port (default: none)")
    p.add_argument("--metrics-host", default=None,
                   help="address of that server (default: STYLESTREAM_METRICS_HOST, else "
                        "127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="give up when Kafka and Redis are not ready within SECONDS of start "
                        "(default: wait for ever, with backoff)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="run the Faust ingest worker")
    p.add_argument("--batch-max", type=int, default=Settings.batch_max,
                   help="events per batch at most (default %(default)s)")
    p.add_argument("--batch-within", type=float, default=None,
                   help="seconds a batch may wait to fill (default: STYLESTREAM_BATCH_WITHIN_MS, "
                        f"else {Settings.batch_within})")
    add_service_arguments(p)
    add_log_format_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from streams.app import create_app, run_worker
    from streams.errors import redact_url
    from streams.health import HealthState, start_health_server
    from streams.probes import check_services, wait_for_services

    settings = load_settings()
    settings = replace(settings, batch_max=args.batch_max,
                       batch_within=(settings.batch_within if args.batch_within is None
                                     else args.batch_within))
    settings.kafka_bootstrap  # noqa: B018 - validate now, with a clear message
    settings.redis  # noqa: B018
    health = HealthState("stream")
    if args.metrics_port:
        start_health_server(health, args.metrics_port, args.metrics_host or settings.metrics_host)
    log.info("ingest worker: Kafka %s, Redis %s, metrics port %s", settings.kafka_bootstrap,
             redact_url(settings.redis), args.metrics_port or "off")
    topics = settings.topics
    needed = [topics.events, topics.dead_letter, topics.refresh]
    asyncio.run(wait_for_services(lambda: check_services(settings, needed), "stream",
                                  args.wait, on_failure=health.record_failure))
    app = create_app(settings, health=health)
    run_worker(app)
    return 0
