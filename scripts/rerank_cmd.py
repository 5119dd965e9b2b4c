"""``stylestream rerank``: the rerank worker (rec-refresh → recall → score → recommendations)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from scripts.logs import add_log_format_argument
from scripts.stream_cmd import add_service_arguments
from streams.config import load_settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rerank", help="run the rerank worker")
    p.add_argument("--catalog", default=None,
                   help="catalog directory: titles for reasons and the paper-002 rule stages")
    p.add_argument("--features", default=None,
                   help="feature store (`stylestream features`): content recall, visual rules")
    p.add_argument("--checkpoint", default=None,
                   help="fusion checkpoint (`stylestream train`): rank with the network; a "
                        "newer file at this path is picked up without a restart")
    p.add_argument("--ranker", default=None,
                   help="final ranker checkpoint (`stylestream evaluate --protocol replay` "
                        "trains one): orders repeats and new items from pair features; a newer "
                        "file at this path is picked up without a restart")
    p.add_argument("--event-clock", action="store_true",
                   help="read scores at the newest event time of each micro-batch instead of "
                        "the wall clock (replaying a historical log)")
    p.add_argument("--no-rules", action="store_true", help="skip the paper-002 rule stages")
    p.add_argument("--base-weight", type=float, default=None,
                   help="weight of the base scorer (network or co-visitation) in the rules")
    p.add_argument("--max-km", type=float, default=None,
                   help="only recommend items of stores within this distance (km)")
    p.add_argument("--distance-weight", type=float, default=None,
                   help="penalty weight of store distance (default: no penalty)")
    p.add_argument("--no-catalog-updates", action="store_true",
                   help="do not onboard new items from catalog-updates while running")
    p.add_argument("--max-batch", type=int, default=None,
                   help="triggers per micro-batch at most")
    add_service_arguments(p)
    add_log_format_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serving.pipeline import ServingOptions, build_worker
    from streams.health import HealthState, start_health_server
    from streams.probes import check_services, wait_for_services
    from streams.runtime import settle_heap

    settings = load_settings()
    settings.kafka_bootstrap  # noqa: B018 - validate now, with a clear message
    settings.redis  # noqa: B018
    health = HealthState("rerank")
    if args.metrics_port:
        start_health_server(health, args.metrics_port, args.metrics_host or settings.metrics_host)
    topics = settings.topics
    asyncio.run(wait_for_services(
        lambda: check_services(settings, [topics.refresh, topics.recommendations]), "rerank",
        args.wait, on_failure=health.record_failure))

    log.info("rerank worker: Kafka %s, metrics port %s, network %s", settings.kafka_bootstrap,
             args.metrics_port or "off", args.checkpoint or "none (co-visitation)")

    async def main() -> None:
        weights = {name: value for name, value in (("base_weight", args.base_weight),
                                                   ("distance_weight", args.distance_weight))
                   if value is not None}  # unset: the options' own defaults
        options = ServingOptions(catalog_dir=args.catalog, checkpoint=args.checkpoint,
                                 features=args.features, rules=not args.no_rules,
                                 max_km=args.max_km, **weights,
                                 follow_catalog=not args.no_catalog_updates,
                                 ranker=args.ranker, event_clock=args.event_clock)
        batch = {} if args.max_batch is None else {"max_batch": args.max_batch}
        worker = build_worker(settings, options, **batch)
        worker.health = health
        settle_heap()  # catalog, index and scorer are loaded: keep the collector off them
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
