"""``stylestream rerank``: the rerank worker (rec-refresh → recall → score → recommendations)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from streams.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rerank", help="run the rerank worker")
    p.add_argument("--catalog", default=None, help="catalog directory (titles for reasons)")
    p.add_argument("--max-batch", type=int, default=64, help="triggers per micro-batch")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this port (default: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serving.pipeline import build_worker

    settings = load_settings()
    settings.kafka_bootstrap  # noqa: B018 - validate now, with a clear message
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1")

    async def main() -> None:
        worker = build_worker(settings, catalog_dir=args.catalog, max_batch=args.max_batch)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await worker.run(stop)
        finally:
            await worker.store.close()

    asyncio.run(main())
    return 0
