"""Reading the live topics without a consumer group, and the board the web view shows.

Subscribers that only *watch* (``stylestream web``, ``stylestream tail``) assign themselves every
partition of a topic instead of joining a consumer group: a group join on the embedded broker
takes about 23 s before the first record, a plain assignment reads at once, and a watcher must
not take partitions away from the workers' groups anyway. The price is that every watcher reads
every partition, which is what a watcher wants.

:class:`LiveBoard` keeps what the page needs, bounded in memory: each shopper's latest Top-5 and
last few behaviour events (least recently active shoppers dropped past ``max_users``), arrival
times for lists/s and events/s over a sliding window, and recent freshness samples (arrival time
of a list − the event time of the newest event behind it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.transport import fetch_wait_ms


async def follow_topic(bootstrap: str, topic: str, *, from_beginning: bool = False,
                       backlog: int = 0, stop: asyncio.Event | None = None,
                       poll_ms: int = 200,
                       on_assigned: Callable[[list[int]], None] | None = None,
                       client_kwargs: Mapping[str, Any] | None = None) -> AsyncIterator:
    """Yield the records of every partition of ``topic`` as they arrive, with no consumer group.

    Starts at the end of each partition, ``backlog`` records before it (so a watcher opened
    mid-stream has something to show), or at the beginning when ``from_beginning``. Ends when
    ``stop`` is set. ``on_assigned(partitions)`` is called once the start offsets are set.
    Raises :class:`LookupError` when the topic does not exist and :class:`ConnectionError`
    when the broker cannot be reached. ``client_kwargs``: SASL/TLS arguments
    (:func:`streams.security.kafka_client_kwargs` for ``"aiokafka"``).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=fetch_wait_ms(), **(client_kwargs or {}))
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise ConnectionError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        partitions = await _partitions(consumer, topic)
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        if from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            first = await consumer.beginning_offsets(parts)
            last = await consumer.end_offsets(parts)
            for tp in parts:
                consumer.seek(tp, max(first[tp], last[tp] - max(0, backlog)))
        if on_assigned is not None:
            on_assigned([tp.partition for tp in parts])
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=poll_ms)
            for records in batches.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        await consumer.topics()  # refreshes the cluster metadata
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        if time.monotonic() > deadline:
            raise LookupError(f"topic {topic!r} not found on the broker "
                              "(create it with `stylestream topics`)")
        await asyncio.sleep(0.2)


def parse_json(value: bytes | None) -> dict | None:
    """A record's JSON object, or ``None`` for anything else (watchers skip bad records)."""
    try:
        data = json.loads(value) if value else None
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def valid_recommendation(message: dict | None) -> bool:
    """The recommendation contract's fields a watcher relies on."""
    return (isinstance(message, dict) and isinstance(message.get("user_id"), str)
            and isinstance(message.get("items"), list)
            and isinstance(message.get("source_event_time"), int | float))


@dataclass
class RateWindow:
    """Arrivals per second over the last ``seconds``."""

    seconds: float = 10.0
    times: deque = field(default_factory=deque)

    def add(self, at: float) -> None:
        self.times.append(at)
        self._trim(at)

    def _trim(self, now: float) -> None:
        while self.times and self.times[0] < now - self.seconds:
            self.times.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        return len(self.times) / self.seconds


Listener = Callable[[str, str, dict], None]


@dataclass
class LiveBoard:
    """Latest lists and events per shopper, throughput and freshness (one event loop owns it)."""

    max_users: int = 50_000
    events_per_user: int = 10
    window_seconds: float = 10.0
    freshness_samples: int = 2000
    lists: OrderedDict = field(default_factory=OrderedDict)
    events: OrderedDict = field(default_factory=OrderedDict)
    lists_total: int = 0
    events_total: int = 0
    skipped_total: int = 0
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.list_rate = RateWindow(self.window_seconds)
        self.event_rate = RateWindow(self.window_seconds)
        self.freshness: deque[float] = deque(maxlen=self.freshness_samples)

    def _touch(self, table: OrderedDict, user: str, value: object) -> None:
        table[user] = value
        table.move_to_end(user)
        while len(table) > self.max_users:
            table.popitem(last=False)

    def add_recommendation(self, message: dict | None, received_at: float | None = None) -> bool:
        """Record a list; ``False`` (and counted as skipped) when it breaks the contract."""
        if not valid_recommendation(message):
            self.skipped_total += 1
            return False
        assert message is not None
        now = time.time() if received_at is None else received_at
        self._touch(self.lists, message["user_id"], message)
        self.lists_total += 1
        self.list_rate.add(now)
        self.freshness.append(now - float(message["source_event_time"]))
        self._notify("rec", message["user_id"], message)
        return True

    def add_event(self, event: dict | None, received_at: float | None = None) -> bool:
        """Record a behaviour event; malformed ones are counted as skipped, not shown."""
        if not isinstance(event, dict) or not isinstance(event.get("user_id"), str) \
                or not isinstance(event.get("item_id"), str):
            self.skipped_total += 1
            return False
        now = time.time() if received_at is None else received_at
        user = event["user_id"]
        recent = self.events.get(user) or deque(maxlen=self.events_per_user)
        recent.append(event)
        self._touch(self.events, user, recent)
        self.events_total += 1
        self.event_rate.add(now)
        self._notify("event", user, event)
        return True

    def _notify(self, kind: str, user: str, payload: dict) -> None:
        for listener in list(self.listeners):
            listener(kind, user, payload)

    def percentile(self, q: float) -> float | None:
        values = sorted(self.freshness)
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    def stats(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return {"lists_per_s": round(self.list_rate.rate(now), 2),
                "events_per_s": round(self.event_rate.rate(now), 2),
                "lists_total": self.lists_total, "events_total": self.events_total,
                "skipped_total": self.skipped_total, "shoppers": len(self.lists),
                "freshness_p50_ms": None if p50 is None else round(p50 * 1000, 1),
                "freshness_p99_ms": None if p99 is None else round(p99 * 1000, 1),
                "window_s": self.window_seconds}

    def recent_users(self, n: int = 200) -> list[str]:
        """Shoppers with a list, most recently served first."""
        return list(reversed(self.lists))[:n]

    def newest_user(self) -> str | None:
        return next(reversed(self.lists), None) if self.lists else None
