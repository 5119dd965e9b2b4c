"""``stylestream stream``: the Faust ingest worker (behaviour events → Redis → rec-refresh)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from scripts.logs import add_log_format_argument
from streams.config import Settings, load_settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="run the Faust ingest worker")
    p.add_argument("--batch-max", type=int, default=Settings.batch_max,
                   help="events per batch at most (default %(default)s)")
    p.add_argument("--batch-within", type=float, default=Settings.batch_within,
                   help="seconds a batch may wait to fill (default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this port (default: none)")
    add_log_format_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streams.app import create_app, run_worker

    settings = replace(load_settings(), batch_max=args.batch_max,
                       batch_within=args.batch_within)
    settings.kafka_bootstrap  # noqa: B018 - validate now, with a clear message
    settings.redis  # noqa: B018
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1")
    log.info("ingest worker: Kafka %s, Redis %s, metrics port %s", settings.kafka_bootstrap,
             settings.redis, args.metrics_port or "off")
    app = create_app(settings)
    run_worker(app)
    return 0
