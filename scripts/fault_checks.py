"""Checks of the running system's state against the log that was produced (durability tests and
``stylestream bench faults``).

- :func:`read_topic` reads a whole topic from the beginning (no consumer group);
- :func:`committed_offsets` asks the broker what a consumer group has committed;
- :func:`expected_scores` replays a log through the reference of Eq. 1–3 (``streams.decay``),
  deduplicating by ``event_id`` per shopper as the store does;
- :func:`score_mismatches` compares every shopper's stored scores with it, read in bulk;
- :func:`stale_lists` finds shoppers whose ``rec:{user}`` list is older than their last event.

Import direction: scripts → serving → streams; the list key is the rerank worker's own.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from serving.worker import REC_KEY_PREFIX
from streams.config import DecaySettings
from streams.contract import BehaviorEvent, InvalidEvent, parse_event
from streams.decay import DecayedScores
from streams.store import ScoreStore


def read_topic(bootstrap: str, topic: str, at_least: int = 0, timeout: float = 60.0,
               idle_ms: int = 1500) -> list:
    """Every record of ``topic`` from the beginning: reads until ``at_least`` records and then
    until ``idle_ms`` pass without one, or the deadline (Tansu's end offset can be short of the
    true end, so the end is found by reading, not by asking)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=idle_ms, fetch_max_bytes=16 * 1024 * 1024)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            before = len(records)
            records.extend(consumer)
            if len(records) >= at_least and len(records) == before:
                break
    finally:
        consumer.close()
    return records


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """Partition → offset committed by ``group`` on ``topic`` (None: nothing committed)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def ask() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            if not parts:
                await consumer._client.force_metadata_update()  # noqa: SLF001
                parts = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            return {tp.partition: await consumer.committed(tp) for tp in tps}
        finally:
            await consumer.stop()

    return asyncio.run(ask())


@dataclass
class ParsedLog:
    """A topic's records split by the contract: valid events in log order, each shopper's last
    produce time (the records' create timestamps) and the values that break the contract."""

    events: list[BehaviorEvent] = field(default_factory=list)
    produced_at: dict[str, float] = field(default_factory=dict)
    bad: list[bytes] = field(default_factory=list)


def parse_log(records: Iterable) -> ParsedLog:
    """Records (``.value``, ``.timestamp`` in ms) → :class:`ParsedLog`."""
    log = ParsedLog()
    for record in records:
        try:
            event = parse_event(record.value)
        except InvalidEvent:
            log.bad.append(record.value)
            continue
        log.events.append(event)
        at = record.timestamp / 1000.0
        if at > log.produced_at.get(event.user_id, -math.inf):
            log.produced_at[event.user_id] = at
    return log


def expected_scores(events: Iterable[BehaviorEvent], decay: DecaySettings) -> DecayedScores:
    """Eq. 1–3 over ``events`` (deduplicated per shopper by ``event_id``, capped as stored)."""
    ref = DecayedScores(decay.weights, decay.decay_per_day, decay.rebase_bound,
                        decay.max_items_per_user)
    for e in events:
        ref.apply(e.event_id, e.user_id, e.item_id, e.behavior, e.timestamp)
    return ref


def stored_scores(redis_url: str, users: list[str], at: float, decay: DecaySettings,
                  chunk: int = 2000) -> dict[str, dict[str, float]]:
    """Every listed shopper's scores S(u,i,at) from Redis, read in bulk (one pipelined round
    trip of per-shard script calls per ``chunk`` shoppers)."""
    async def read() -> dict[str, dict[str, float]]:
        store = ScoreStore.from_url(redis_url, decay)
        try:
            out: dict[str, dict[str, float]] = {}
            for k in range(0, len(users), chunk):
                part = users[k:k + chunk]
                profiles = await store.user_profiles(part, at, n=decay.max_items_per_user)
                out.update({u: p["scores"] for u, p in zip(part, profiles, strict=True)})
            return out
        finally:
            await store.close()

    return asyncio.run(read())


def score_mismatches(reference: DecayedScores, stored: dict[str, dict[str, float]], at: float,
                     rel_tol: float = 1e-9) -> tuple[list[str], float]:
    """Shoppers whose stored scores differ from the reference (items or values beyond
    ``rel_tol``), and the worst relative error seen over all shoppers."""
    wrong: list[str] = []
    worst = 0.0
    for user in reference.users:
        want = reference.scores(user, at)
        got = stored.get(user, {})
        if set(want) != set(got):
            wrong.append(user)
            worst = max(worst, 1.0)
            continue
        errors = [abs(got[i] - w) / max(abs(w), 1e-300) for i, w in want.items()]
        err = max(errors, default=0.0)
        worst = max(worst, err)
        if err > rel_tol or any(math.isnan(got[i]) for i in got):
            wrong.append(user)
    return wrong, worst


def stored_lists(redis_url: str, users: list[str]) -> dict[str, dict | None]:
    """``rec:{user}`` of every listed shopper (MGET in one round trip), decoded."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        values = client.mget([REC_KEY_PREFIX + u for u in users]) if users else []
    finally:
        client.close()
    return {u: None if v is None else json.loads(v) for u, v in zip(users, values, strict=True)}


def stale_lists(redis_url: str, produced_at: dict[str, float]) -> list[str]:
    """Shoppers with an event whose stored list is missing or was generated before their last
    event was produced (event times may arrive out of order, so the list's age is compared with
    the produce time, not the event time)."""
    users = sorted(produced_at)
    lists = stored_lists(redis_url, users)
    return [u for u in users if lists[u] is None
            or float(lists[u]["generated_at"]) < produced_at[u]]


def popularity_error(redis_url: str, events: Iterable[BehaviorEvent], at: float,
                     decay: DecaySettings) -> tuple[int, float]:
    """Global popularity against Eq. 1–3 over the distinct events (one per shopper and
    ``event_id``): (items whose stored value is off by more than 1e-9 relative, the worst
    relative shortfall). Reported, not asserted: a worker killed between its user and its
    global Lua call under-counts these counters (``streams/store.py``)."""
    want: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for e in events:
        if (e.user_id, e.event_id) in seen:
            continue
        seen.add((e.user_id, e.event_id))
        want[e.item_id] = want.get(e.item_id, 0.0) + decay.weights[e.behavior] * math.exp(
            -decay.decay_per_second * (at - e.timestamp))
    items = sorted(want)

    async def read() -> dict[str, float]:
        store = ScoreStore.from_url(redis_url, decay)
        try:
            return await store.popularity_of(items, at)
        finally:
            await store.close()

    got = asyncio.run(read()) if items else {}
    errors = [(want[i] - got.get(i, 0.0)) / want[i] for i in items if want[i] > 0]
    off = sum(1 for err in errors if abs(err) > 1e-9)
    return off, max((abs(err) for err in errors), default=0.0)
