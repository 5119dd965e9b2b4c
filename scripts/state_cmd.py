"""``stylestream scores USER`` and ``stylestream recs USER``: read a shopper's state back."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from streams.config import load_settings
from streams.contract import InvalidEvent, parse_timestamp
from streams.store import ScoreStore


def register(sub: argparse._SubParsersAction) -> None:
    scores = sub.add_parser("scores", help="a shopper's decayed scores as JSON {item_id: score}")
    scores.add_argument("user")
    scores.add_argument("--at", default=None,
                        help="time T of S(u,i,T): epoch seconds or ISO-8601 (default: now)")
    scores.add_argument("--top", type=int, default=None, help="only the strongest N items")
    scores.set_defaults(func=run_scores)
    recs = sub.add_parser("recs", help="a shopper's latest Top-5 list as JSON")
    recs.add_argument("user")
    recs.set_defaults(func=run_recs)


def run_scores(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        at = time.time() if args.at is None else parse_timestamp(
            args.at, max_future_seconds=float("inf"))
    except InvalidEvent as exc:
        print(f"stylestream scores: --at: {exc.detail}", file=sys.stderr)
        return 2

    async def read() -> list[tuple[str, float]]:
        import redis.asyncio as aioredis

        from streams.security import redis_client_kwargs

        t = settings.service_timeout
        store = ScoreStore(aioredis.Redis.from_url(settings.redis, decode_responses=True,
                                                   socket_timeout=t, socket_connect_timeout=t,
                                                   **redis_client_kwargs(settings)),
                           settings.decay)
        try:
            return await store.user_top(args.user, at, args.top)
        finally:
            await store.close()

    print(json.dumps(dict(asyncio.run(read())), indent=2))
    return 0


def run_recs(args: argparse.Namespace) -> int:
    import redis

    from serving.worker import REC_KEY_PREFIX
    from streams.security import redis_client_kwargs

    settings = load_settings()
    t = settings.service_timeout
    client = redis.Redis.from_url(settings.redis, socket_timeout=t, socket_connect_timeout=t,
                                  **redis_client_kwargs(settings))
    raw = client.get(REC_KEY_PREFIX + args.user)
    if raw is None:
        print(f"stylestream recs: no recommendations for {args.user!r} yet", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(raw), indent=2))
    return 0
