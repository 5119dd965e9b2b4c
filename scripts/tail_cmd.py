"""``stylestream tail``: print recommendation lists as they arrive, one JSON object a line.

Reads every partition of ``recommendations`` without a consumer group, so the first list shows
at once (a group join on the embedded broker takes about 23 s) and the workers' groups are left
alone. ``--user`` keeps one shopper's lists; ``--from-beginning`` replays the topic first;
``--count N`` stops after N lists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tail", help="print Top-5 lists from the recommendations topic as they "
                                    "arrive (JSON lines)")
    p.add_argument("--user", action="append", default=None,
                   help="only this shopper's lists (repeatable)")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the beginning of the topic instead of its end")
    p.add_argument("--count", type=int, default=None, help="stop after N lists")
    p.add_argument("--topic", default=None, help="topic (default: the contract's recommendations)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serving.live_feed import follow_topic, parse_json, valid_recommendation
    from streams.config import load_settings
    from streams.probes import preflight
    from streams.security import kafka_client_kwargs

    settings = load_settings()
    bootstrap = settings.kafka_bootstrap
    topic = args.topic or settings.topics.recommendations
    preflight(settings, topics=[topic])  # refused, silent, no such topic: one line (cli)
    users = set(args.user or ())

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        shown = 0
        def assigned(partitions: list[int]) -> None:
            start = "the beginning" if args.from_beginning else "the end"
            print(f"stylestream tail: following {topic} ({len(partitions)} partitions, no "
                  f"consumer group) from {start}", file=sys.stderr, flush=True)

        records = follow_topic(bootstrap, topic, from_beginning=args.from_beginning, stop=stop,
                               on_assigned=assigned,
                               client_kwargs=kafka_client_kwargs(settings, "aiokafka"))
        async with contextlib.aclosing(records):
            async for record in records:
                message = parse_json(record.value)
                if not valid_recommendation(message):
                    print(f"stylestream tail: skipped a record at {record.topic}/"
                          f"{record.partition}@{record.offset}: not a recommendation",
                          file=sys.stderr, flush=True)
                    continue
                assert message is not None
                if users and message["user_id"] not in users:
                    continue
                print(json.dumps(message, separators=(",", ":")), flush=True)
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
        return 0

    try:
        return asyncio.run(main())
    except (LookupError, ConnectionError) as exc:
        print(f"stylestream tail: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
