"""The Faust ingest app: behaviour events in, decayed scores in Redis, refresh triggers out.

Dataflow on one screen (the faust ``withdrawals.py`` habit)::

    behavior-events ──take_events(batch)──▶ validate ──▶ ScoreStore.apply_batch (2 Lua calls)
          │                                    └─ invalid ─▶ behavior-events-dlq (bytes + reason)
          └──────────────────────────────────────────────▶ rec-refresh (one per user per batch)

Processing is at-least-once (Tansu rejects the idempotent producer): a redelivered event is a
duplicate by ``event_id`` inside the Lua script and changes nothing. Redis being unreachable is
not bad input: the batch is retried with backoff and not acknowledged until it is applied.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams import metrics
from streams.config import Settings
from streams.contract import BehaviorEvent, InvalidEvent, dead_letter_record, parse_event
from streams.store import BatchResult, ScoreStore

log = logging.getLogger(__name__)

def refresh_message(user_id: str, source_event_time: float, events: int) -> bytes:
    """The ``rec-refresh`` trigger: which user, and the newest event time that caused it."""
    return json.dumps({"user_id": user_id, "source_event_time": source_event_time,
                       "emitted_at": time.time(), "events": events},
                      separators=(",", ":")).encode()


#: Per user of a batch: the newest event time applied and how many events the batch had.
Applied = dict[str, tuple[float, int]]


@dataclass
class IngestParts:
    """The ingest app without its agent: topics, and the two halves of handling a batch.

    ``apply`` validates a batch (invalid records to the dead-letter topic), applies the valid
    events to Redis (retrying while Redis is unreachable) and says which users changed;
    ``publish`` sends their refresh triggers. :func:`create_app` joins them in the batched
    agent; the ingest benchmark builds its one-event-at-a-time baseline from the same parts.
    """

    app: faust.App
    events_topic: faust.TopicT
    refresh_topic: faust.TopicT
    apply: Callable[[Sequence[faust.types.EventT]], Awaitable[Applied]]
    publish: Callable[[Applied], Awaitable[None]]


def build_ingest(settings: Settings, app_id: str = "stylestream-ingest") -> IngestParts:
    """The Faust app, its topics, the Redis store task and the batch handlers (no agent)."""
    app = faust.App(
        app_id,
        broker=f"stylestream://{settings.kafka_bootstrap}",  # streams/transport.py
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=6,
        broker_heartbeat_interval=2,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        processing_guarantee="at_least_once",
        # refresh triggers go out in a burst per batch: let the producer pack them
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        broker_max_poll_records=2000,
        stream_buffer_maxsize=8192,
        web_enabled=False,
        store="memory://",
    )
    topics = settings.topics
    events_topic = app.topic(topics.events, value_type=bytes, key_type=bytes,
                             value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(topics.dead_letter, value_type=bytes, key_type=bytes,
                          value_serializer="raw", key_serializer="raw")
    refresh_topic = app.topic(topics.refresh, value_type=bytes, key_type=bytes,
                              value_serializer="raw", key_serializer="raw")
    state: dict[str, Any] = {}

    @app.task
    async def open_store() -> None:
        state["store"] = ScoreStore.from_url(settings.redis, settings.decay)

    async def apply_with_retry(valid: list[BehaviorEvent]) -> BatchResult:
        while "store" not in state:
            await asyncio.sleep(0.01)
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                result = await state["store"].apply_batch(valid)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                metrics.REDIS_RETRIES.inc()
                log.warning("Redis unavailable (%s); retrying batch of %d in %.1fs",
                            exc, len(valid), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            metrics.UPDATE_LATENCY.observe(time.perf_counter() - started)
            return result

    async def apply(batch: Sequence[faust.types.EventT]) -> Applied:
        metrics.BATCH_SIZE.observe(len(batch))
        valid: list[BehaviorEvent] = []
        counts: dict[str, int] = {}
        for event in batch:
            message = event.message
            try:
                parsed = parse_event(message.value)
            except InvalidEvent as error:
                metrics.INVALID.labels(error.reason).inc()
                await dlq_topic.send(key=message.key, value=dead_letter_record(
                    message.value, error, message.topic, message.partition, message.offset))
                continue
            valid.append(parsed)
            counts[parsed.behavior] = counts.get(parsed.behavior, 0) + 1
        if not valid:
            return {}
        result = await apply_with_retry(valid)
        for behavior, n in counts.items():
            metrics.EVENTS.labels(behavior).inc(n)
        metrics.DUPLICATES.inc(result.duplicates)
        per_user: dict[str, int] = {}
        for e in valid:
            per_user[e.user_id] = per_user.get(e.user_id, 0) + 1
        return {user: (newest, per_user[user]) for user, newest in result.users.items()}

    async def publish(applied: Applied) -> None:
        # hand every trigger to the producer first, then wait for all acknowledgements
        # (one wait per batch instead of Faust's per-message bookkeeping)
        pending = [await app.producer.send(
            topics.refresh, user.encode(), refresh_message(user, newest, events),
            partition=None, timestamp=None, headers=None)
            for user, (newest, events) in applied.items()]
        await asyncio.gather(*pending)
        metrics.REFRESHES.inc(len(applied))

    @app.on_after_configured.connect
    def _configured(app: faust.App, **_: Any) -> None:
        log.info("ingest app configured: %s -> %s", settings.kafka_bootstrap, settings.redis)

    return IngestParts(app, events_topic, refresh_topic, apply, publish)


def create_app(settings: Settings, app_id: str = "stylestream-ingest") -> faust.App:
    """The ingest app: batches of up to ``settings.batch_max`` events, closed after
    ``settings.batch_within`` seconds at the latest."""
    parts = build_ingest(settings, app_id)

    @parts.app.agent(parts.events_topic, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within):
            await parts.publish(await parts.apply(batch))

    return parts.app


def run_worker(app: faust.App, loglevel: str = "warning") -> None:
    """Run a Faust worker for ``app`` in this process until it is stopped (SIGINT/SIGTERM).

    When logging is already set up (the command line's text or JSON handlers), the worker keeps
    those handlers instead of installing its own coloured one."""
    handlers = list(logging.getLogger().handlers)
    keep: dict[str, Any] = {}
    if handlers:
        app.conf.loghandlers = handlers
        keep["logging_config"] = {"version": 1, "incremental": True}
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, **keep)
    if handlers:
        worker.spinner = None  # no terminal spinner codes in log files, no handler re-levelled
    worker.execute_from_commandline()
