"""``stylestream web``: the live web view (``serving/webview.py``) on a local port.

Reads ``recommendations`` and ``behavior-events`` from ``STYLESTREAM_KAFKA`` without a consumer
group and serves one page that follows a shopper's Top-5 and events as they arrive. Product
images come from ``--catalog`` (default: the demo catalog under ``STYLESTREAM_HOME``, when it
exists).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="live web view of Top-5 lists, events, throughput, freshness")
    p.add_argument("--catalog", default=None,
                   help="catalog directory for titles and images (default: "
                        "$STYLESTREAM_HOME/demo-catalog when present)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    p.add_argument("--backlog", type=int, default=500,
                   help="records per partition read back from before the start (default 500)")
    p.set_defaults(func=run)


def default_catalog(home: str) -> Path | None:
    path = Path(home) / "demo-catalog"
    return path if (path / "catalog.jsonl").exists() else None


def run(args: argparse.Namespace) -> int:
    from serving.webview import CatalogImages, serve
    from streams.config import load_settings
    from streams.probes import preflight
    from streams.security import kafka_client_kwargs

    settings = load_settings()
    bootstrap = settings.kafka_bootstrap
    topics = settings.topics
    preflight(settings, topics=[topics.recommendations, topics.events])  # one line (cli)
    catalog_dir = Path(args.catalog) if args.catalog else default_catalog(settings.home)
    try:
        catalog = CatalogImages.open(catalog_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"stylestream web: --catalog: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"stylestream web: --port {args.port} is not a port", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        images = f"images from {catalog.root}" if catalog.root else "no catalog: no images"
        print(f"web view: {url}  ({images}; Ctrl-C stops)", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(bootstrap, settings.topics.recommendations, settings.topics.events, catalog,
                    args.host, args.port, args.backlog, stop, on_ready=ready,
                    kafka_kwargs=kafka_client_kwargs(settings, "aiokafka"))

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"stylestream web: cannot serve on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    return 0
