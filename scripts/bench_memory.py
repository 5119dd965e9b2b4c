"""``stylestream bench memory``: Redis bytes per shopper and per item at a generated load.

Generated shoppers (default 100,000) send events (a geometric number each, mean
``--events-per-shopper``; Zipf-popular items; event ids 32 hex characters, as a UUID would be)
spread over ``--days`` of event time. They are applied in time order, in batches, through the
store (the same Lua as the ingest worker) into a fresh embedded Redis, so the per-user cap, the
dedupe window, the co-visitation caps and the TTLs are all in force. Then:

- ``INFO memory``: ``used_memory`` after minus before (the empty server is the baseline), split
  into the global counters (``MEMORY USAGE`` of every popularity / co-visitation key) and the
  rest, per shopper;
- ``MEMORY USAGE`` of the keys of a sample of shoppers (the keys alone, no dictionary
  overhead);
- beside it, the size of the same events as JSON (what the Kafka log holds): what the state
  costs relative to the log it summarises.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from pathlib import Path

from scripts.bench_args import json_out
from scripts.embedded import start_services


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "memory", help="Redis bytes per shopper and per item at a generated load",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000, help="catalog size")
    parser.add_argument("--events-per-shopper", type=float, default=10.0,
                        help="mean events per shopper (geometric)")
    parser.add_argument("--days", type=float, default=30.0, help="span of event time")
    parser.add_argument("--batch", type=int, default=1000, help="events per store batch")
    parser.add_argument("--sample", type=int, default=2000,
                        help="shoppers whose keys MEMORY USAGE measures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="var/bench/memory.json", type=json_out)
    parser.set_defaults(func=run)


def generate(shoppers: int, items: int, mean_events: float, days: float,
             seed: int) -> list[dict]:
    """Events of ``shoppers`` generated shoppers, in event-time order."""
    rng = random.Random(seed)
    # Zipf(1) popularity over the catalog: a few items take most events
    weights = [1.0 / (k + 1) for k in range(items)]
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    item_ids = [f"item-{k:06d}" for k in range(items)]
    behaviors = ["view"] * 14 + ["favorite"] * 2 + ["cart"] * 3 + ["purchase"]
    t0 = 1.75e9
    p = 1.0 / max(mean_events, 1.0)
    log_q = math.log(1.0 - p) if p < 1.0 else -math.inf
    events = []
    for user in range(shoppers):
        count = 1 + (int(math.log(1.0 - rng.random()) / log_q) if p < 1.0 else 0)
        user_id = f"shopper-{user:07d}"
        for _ in range(count):
            item = item_ids[min(items - 1, _bisect(cumulative, rng.random() * total))]
            events.append({"event_id": f"{rng.getrandbits(128):032x}", "user_id": user_id,
                           "item_id": item, "behavior": rng.choice(behaviors),
                           "timestamp": t0 + rng.uniform(0.0, days * 86400.0)})
    events.sort(key=lambda e: e["timestamp"])
    return events


def _bisect(cumulative: list[float], x: float) -> int:
    lo, hi = 0, len(cumulative)
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


async def load_and_measure(url: str, events: list[dict], shoppers: int, batch: int,
                           sample: int, seed: int) -> dict:
    from streams.config import DecaySettings
    from streams.contract import validate_event
    from streams.store import ScoreStore, global_keys, user_keys

    decay = DecaySettings()
    store = ScoreStore.from_url(url, decay)
    redis = store.redis
    try:
        server = await redis.info("server")
        memory = await redis.info("memory")
        before = int(memory["used_memory"])
        started = time.perf_counter()
        applied = 0
        for k in range(0, len(events), batch):
            result = await store.apply_batch([validate_event(e) for e in events[k:k + batch]])
            applied += result.applied
        load_seconds = time.perf_counter() - started
        after = int((await redis.info("memory"))["used_memory"])
        keys = int((await redis.info("keyspace")).get("db0", {}).get("keys", 0))

        global_bytes, items_with_rows, popular_items = 0, 0, 0
        for shard in range(decay.global_shards):
            pop, meta, cvkeys = global_keys(shard)
            for key in (pop, meta, cvkeys):
                global_bytes += int(await redis.memory_usage(key, samples=0) or 0)
            popular_items += int(await redis.zcard(pop))
            rows = await redis.smembers(cvkeys)
            items_with_rows += len(rows)
            prefix = f"ss:{{g{shard}}}:cv:"
            async with redis.pipeline(transaction=False) as pipe:
                for item in rows:
                    pipe.memory_usage(prefix + item, samples=0)
                global_bytes += sum(int(v or 0) for v in await pipe.execute())

        rng = random.Random(seed + 1)
        chosen = rng.sample(range(shoppers), min(sample, shoppers))
        names = [key.rsplit(":", 1)[1] for key in user_keys("x")]
        per_key = [0] * len(names)
        async with redis.pipeline(transaction=False) as pipe:
            for user in chosen:
                for key in user_keys(f"shopper-{user:07d}"):
                    pipe.memory_usage(key, samples=0)
            sizes = await pipe.execute()
        for k, size in enumerate(sizes):
            per_key[k % len(names)] += int(size or 0)
        ttl_ok = all(0 < t for t in [await redis.ttl(key) for key in
                                     user_keys(f"shopper-{chosen[0]:07d}")])
    finally:
        await store.close()
    used = after - before
    return {
        "redis_version": server.get("redis_version"), "allocator": memory.get("mem_allocator"),
        "events": len(events), "applied": applied, "load_seconds": load_seconds,
        "events_per_s": len(events) / load_seconds, "keys": keys,
        "used_memory_before": before, "used_memory_after": after, "used_memory_delta": used,
        "global_counter_bytes": global_bytes, "items_with_popularity": popular_items,
        "items_with_covisitation_row": items_with_rows,
        "bytes_per_item": global_bytes / max(popular_items, 1),
        "bytes_per_shopper_info": (used - global_bytes) / shoppers,
        "bytes_per_shopper_sampled": sum(per_key) / len(chosen),
        "sampled_bytes_by_key": dict(zip(names, [v / len(chosen) for v in per_key],
                                         strict=True)),
        "ttls_set": ttl_ok,
        "settings": {"max_items_per_user": decay.max_items_per_user,
                     "ttl_seconds": decay.ttl_seconds,
                     "dedupe_ttl_seconds": decay.dedupe_ttl_seconds,
                     "global_shards": decay.global_shards, "covisit_cap": store.covisit_cap,
                     "covisit_fanout": store.covisit_fanout},
    }


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    events = generate(args.shoppers, args.items, args.events_per_shopper, args.days, args.seed)
    log_bytes = sum(len(json.dumps(e, separators=(",", ":"))) for e in events)
    print(f"generated {len(events):,} events of {args.shoppers:,} shoppers "
          f"({time.perf_counter() - started:.1f}s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with start_services(partitions=1, workdir=str(out.parent / "memory-services")) as svc:
        result = asyncio.run(load_and_measure(svc.redis_url, events, args.shoppers, args.batch,
                                              args.sample, args.seed))
    result.update(shoppers=args.shoppers, catalog_items=args.items,
                  mean_events_per_shopper=args.events_per_shopper, days=args.days,
                  event_log_bytes=log_bytes, event_log_bytes_per_shopper=log_bytes / args.shoppers)
    out.write_text(json.dumps(result, indent=2))
    print(f"{result['events']:,} events applied at {result['events_per_s']:,.0f}/s; Redis grew "
          f"{result['used_memory_delta'] / 2**20:,.1f} MiB ({result['keys']:,} keys)")
    print(f"bytes per shopper: {result['bytes_per_shopper_info']:,.0f} (INFO memory, global "
          f"counters excluded), {result['bytes_per_shopper_sampled']:,.0f} (MEMORY USAGE of the "
          f"keys, {args.sample} sampled); the same events as JSON: "
          f"{result['event_log_bytes_per_shopper']:,.0f}")
    print(f"bytes per item: {result['bytes_per_item']:,.0f} (popularity + co-visitation, "
          f"{result['items_with_popularity']:,} items seen)")
    print(f"wrote {out}")
    return 0
