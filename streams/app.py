"""The Faust ingest app: behaviour events in, decayed scores in Redis, refresh triggers out.

Dataflow on one screen (the faust ``withdrawals.py`` habit)::

    behavior-events ──take_events(batch)──▶ validate ──▶ ScoreStore.apply_batch (2 Lua calls)
          │                                    └─ invalid ─▶ behavior-events-dlq (bytes + reason)
          └──────────────────────────────────────────────▶ rec-refresh (one per user per batch)

Processing is at-least-once (Tansu rejects the idempotent producer): a redelivered event is a
duplicate by ``event_id`` inside the Lua script and changes no score, whatever its event time
(seen ids are kept by arrival time), yet its user's refresh trigger goes out again; global
increments a dead worker left pending are counted by the next batch on their shards or by the
``count_pending`` timer (streams/store.py). Redis being unreachable is not bad input: the batch
is retried with backoff and not acknowledged until it is applied; the same holds for the refresh
triggers while Kafka is unreachable. With a :class:`~streams.health.HealthState` the app probes
both services every few seconds and marks each batch, for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError

from streams import metrics
from streams.config import Settings
from streams.contract import BehaviorEvent, InvalidEvent, dead_letter_record, parse_event
from streams.health import HealthState, keep_probing
from streams.record_batches import send_record_batches
from streams.redact import install_log_redaction, redact
from streams.redis_client import UNAVAILABLE_ERRORS
from streams.retry import retry_until_done
from streams.runtime import settle_heap
from streams.security import kafka_client_kwargs
from streams.store import PENDING_GRACE_SECONDS, BatchResult, ScoreStore

log = logging.getLogger(__name__)

#: The refresh triggers of one batch: user → (newest event time applied, events of the batch).
Triggers = dict[str, tuple[float, int]]
#: Sends a batch's triggers (raising ``KafkaError`` while Kafka is unreachable).
Sender = Callable[[Triggers], Awaitable[None]]


def refresh_message(user_id: str, source_event_time: float, events: int) -> bytes:
    """The ``rec-refresh`` trigger: which user, and the newest event time that caused it
    (compact JSON; orjson: a fifth of json's cost per trigger)."""
    return orjson.dumps({"user_id": user_id, "source_event_time": source_event_time,
                         "emitted_at": time.time(), "events": events})


@dataclass
class PreparedBatch:
    """A taken batch after validation: its events (to acknowledge) and the valid ones."""

    events: Sequence[faust.types.EventT]
    valid: list[BehaviorEvent]
    counts: dict[str, int]


@dataclass
class IngestParts:
    """The ingest app without its agent: the topics and the steps of a batch.

    ``prepare(batch)`` validates it (invalid records to the dead-letter topic);
    ``apply(prepared)`` applies the valid events to Redis (retried while Redis is unreachable)
    and returns the refresh triggers; ``send(triggers, send=None)`` sends them (default: all of
    the batch handed to the producer, one wait; retried while Kafka is unreachable);
    ``process(batch, send=None)`` is the three in a row. :func:`create_app` drives the steps
    with :func:`run_pipelined`; the ingest benchmark builds its plain one-event agent from
    ``process``."""

    app: faust.App
    events_topic: faust.TopicT
    refresh_topic: faust.TopicT
    process: Callable[..., Awaitable[None]]
    prepare: Callable[[Sequence[faust.types.EventT]], Awaitable[PreparedBatch]]
    apply: Callable[[PreparedBatch], Awaitable[Triggers]]
    send: Callable[..., Awaitable[None]]


def create_app(settings: Settings, app_id: str = "stylestream-ingest",
               health: HealthState | None = None) -> faust.App:
    """The ingest app: batches of up to ``settings.batch_max`` events, closed after
    ``settings.batch_within`` seconds at the latest, handled by :func:`run_pipelined`.
    ``health`` is kept up to date for ``/readyz``."""
    parts = build_ingest(settings, app_id, health)

    @parts.app.agent(parts.events_topic, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        await run_pipelined(parts, take_batches(stream, settings), stream.ack, health)

    return parts.app


#: Batches handed to Redis and Kafka at once at most: the newest waits for its Redis step
#: behind the older one's, while the older one's triggers are still being acknowledged.
PIPELINE_DEPTH = 2


async def run_pipelined(parts: IngestParts,
                        batches: AsyncIterator[Sequence[faust.types.EventT]],
                        ack: Callable[[faust.types.EventT], Awaitable[bool]],
                        health: HealthState | None = None) -> None:
    """Handle ``batches`` with the next one taken and parsed while the previous one is in
    Redis and Kafka, keeping every guarantee of handling them one after another:

    - Redis applies the batches in the order they were taken (a batch's Redis step starts when
      the previous one's has ended; if that failed, this one fails too and nothing later runs);
    - a batch's offsets are acknowledged (``ack``, the stream's) only once its events are in
      Redis and its refresh triggers acknowledged by Kafka: each message is referenced once
      more when taken (Faust's reference count), so the acknowledgement that
      :func:`take_batches` gives when the next batch is asked for is not the last one; the
      batch's own task gives the last. A crash anywhere before leaves the batch uncommitted,
      redelivered and deduplicated (at-least-once, exactly-once effect in Redis).
    - at most :data:`PIPELINE_DEPTH` batches are in flight; an error of one (after its own
      retries) is raised here, as the one-by-one loop raised it, and the others are cancelled.
    """
    in_flight: deque[tuple[asyncio.Task[None], float]] = deque()
    applied_before: asyncio.Future[None] | None = None

    def mark_busy() -> None:
        if health is not None:
            health.busy_since = in_flight[0][1] if in_flight else None

    async def oldest_done() -> None:
        task, _ = in_flight[0]
        try:
            await task
        finally:
            in_flight.popleft()
            mark_busy()

    try:
        async for batch in batches:
            for event in batch:
                event.message.incref()  # released by the batch's own task (see above)
            prepared = await parts.prepare(batch)
            while len(in_flight) >= PIPELINE_DEPTH:
                await oldest_done()
            applied = asyncio.get_running_loop().create_future()
            task = asyncio.ensure_future(
                _finish_in_order(parts, prepared, applied_before, applied, ack))
            in_flight.append((task, time.monotonic() if health is None else health.clock()))
            mark_busy()
            applied_before = applied
        while in_flight:
            await oldest_done()
    finally:
        for task, _ in in_flight:
            task.cancel()


async def _finish_in_order(parts: IngestParts, prepared: PreparedBatch,
                           applied_before: asyncio.Future[None] | None,
                           applied: asyncio.Future[None],
                           ack: Callable[[faust.types.EventT], Awaitable[bool]]) -> None:
    """One batch's task in :func:`run_pipelined`: wait for the previous batch's Redis step,
    apply this one, let the next one go (``applied``), send the triggers, acknowledge."""
    try:
        if applied_before is not None:
            await asyncio.shield(applied_before)
        triggers = await parts.apply(prepared)
    except BaseException as exc:
        if not applied.done():
            applied.set_exception(exc if isinstance(exc, Exception)
                                  else RuntimeError("a batch was cancelled before it was applied"))
            applied.exception()  # retrieved here: the next batch may never look
        raise
    applied.set_result(None)
    await parts.send(triggers)
    for event in prepared.events:
        await ack(event)


def take_batches(stream: faust.StreamT, settings: Settings,
                 ) -> AsyncIterator[Sequence[faust.types.EventT]]:
    """The batches the ingest agent handles: up to ``settings.batch_max`` events, closed after
    ``settings.batch_within`` seconds at the latest; a batch's events are acknowledged when the
    next one is asked for (after it was handled). The ingest benchmark's ceiling agent takes
    its batches here too, so that it measures exactly what the product's agent gets."""
    return stream.take_events(settings.batch_max, within=settings.batch_within)


def build_ingest(settings: Settings, app_id: str = "stylestream-ingest",
                 health: HealthState | None = None) -> IngestParts:
    """The Faust app, its topics, store task, probes and timers, and the batch handler."""
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
        # a deep stream buffer and large polls: the consume-only ceiling of this app rose from
        # ~7-8k to ~10-18k events/s on the shared 2-core box (2,000 / 8,192 before; see
        # BENCHMARKS.md "Ingest against its ceiling")
        broker_max_poll_records=8000,
        stream_buffer_maxsize=32768,
        web_enabled=False,
        store="memory://",
        **kafka_client_kwargs(settings, "faust"),  # SASL / TLS (streams/security.py)
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
        # learning the server's mode (single or cluster) blocks: off the event loop, and
        # retried for as long as Redis is unreachable (as batches are)
        store = ScoreStore.from_settings(settings)
        while "store" not in state:
            try:
                await asyncio.to_thread(store.connect)
                state["store"] = store
            except UNAVAILABLE_ERRORS as exc:  # also a refused password, as for batches
                note_failure(exc)
                log.warning("Redis unavailable (%s); retrying in 1.0s", exc)
                await asyncio.sleep(1.0)
            except ValueError as exc:  # a cluster URL naming a database other than 0
                log.error("%s", exc)
                await app.crash(exc)
                return
        if health is not None:
            health.consuming = lambda: bool(app.consumer.assignment())

    if health is not None:
        @app.task
        async def probe_services() -> None:
            # a loop of its own rather than app.timer: a probe of a silent service may outlast
            # the interval (Faust would log each overlap); Faust cancels the task at shutdown
            await keep_probing(health, settings, [topics.events], asyncio.Event())

    def note_failure(exc: BaseException) -> None:
        if health is not None:
            health.record_exception(exc, settings)

    @app.timer(interval=PENDING_GRACE_SECONDS)
    async def count_pending() -> None:
        """Popularity/co-visitation increments a dead worker left pending, counted once."""
        if "store" not in state:
            return
        try:
            counted = await state["store"].drain_pending()
        except UNAVAILABLE_ERRORS as exc:
            log.warning("Redis unavailable (%s); pending global increments wait", exc)
            return
        if counted:
            log.info("counted %d pending global entries left by a dead worker", counted)

    async def apply_with_retry(valid: list[BehaviorEvent]) -> BatchResult:
        while "store" not in state:
            await asyncio.sleep(0.01)

        async def attempt() -> BatchResult:
            started = time.perf_counter()
            result = await state["store"].apply_batch(valid)
            metrics.UPDATE_LATENCY.observe(time.perf_counter() - started)
            return result

        def redis_down(exc: BaseException, delay: float) -> None:
            metrics.REDIS_RETRIES.inc()
            note_failure(exc)
            log.warning("Redis unavailable (%s); retrying batch of %d in %.1fs",
                        exc, len(valid), delay)

        return await retry_until_done(
            attempt, UNAVAILABLE_ERRORS, redis_down)

    async def send_batched(triggers: Triggers) -> None:
        # one record batch per partition (keyed by user, placed by the producer's own
        # partitioner, as a plain send would), then one wait for all acknowledgements
        producer = app.producer
        pending = await send_record_batches(
            producer._ensure_producer(), topics.refresh,
            ((user.encode(), refresh_message(user, newest, events))
             for user, (newest, events) in triggers.items()),
            producer.partitioner)
        await asyncio.gather(*pending)

    async def send_refreshes(triggers: Triggers, send: Sender) -> None:
        """Emit the batch's triggers, one per user with a valid event in it, duplicates
        included: a batch redelivered after a crash between its Redis step and its triggers
        is all duplicates, and its users still need their lists refreshed. While Kafka fails,
        retry them all with backoff (a repeated trigger only makes the rerank worker refresh
        a list once more)."""
        def kafka_down(exc: BaseException, delay: float) -> None:
            metrics.KAFKA_RETRIES.inc()
            note_failure(exc)
            log.warning("Kafka unavailable (%s); retrying %d refresh triggers in %.1fs",
                        exc, len(triggers), delay)

        await retry_until_done(lambda: send(triggers), (KafkaError,), kafka_down)

    async def process(batch: Sequence[faust.types.EventT], send: Sender | None = None) -> None:
        """Validate, apply and trigger one batch, one step after the other."""
        if health is not None:
            health.batch_started()
        try:
            await send_triggers(await apply(await prepare(batch)), send)
        finally:
            if health is not None:
                health.batch_done()

    async def prepare(batch: Sequence[faust.types.EventT]) -> PreparedBatch:
        metrics.BATCH_SIZE.observe(len(batch))
        valid: list[BehaviorEvent] = []
        counts: dict[str, int] = {}
        for event in batch:
            message = event.message
            try:
                parsed = parse_event(message.value, limits=settings.limits)
            except InvalidEvent as error:
                metrics.INVALID.labels(error.reason).inc()
                key = message.key[:1024] if message.key else message.key  # a hostile key too
                await dlq_topic.send(key=key, value=dead_letter_record(
                    message.value, error, message.topic, message.partition, message.offset,
                    keep_bytes=settings.limits.max_message_bytes))
                continue
            valid.append(parsed)
            counts[parsed.behavior] = counts.get(parsed.behavior, 0) + 1
        return PreparedBatch(batch, valid, counts)

    async def apply(prepared: PreparedBatch) -> Triggers:
        """Apply the valid events to Redis; the triggers: user → (newest event time, events)."""
        valid = prepared.valid
        if not valid:
            return {}
        result = await apply_with_retry(valid)
        for behavior, n in prepared.counts.items():
            metrics.EVENTS.labels(behavior).inc(n)
        metrics.DUPLICATES.inc(result.duplicates)
        triggers: Triggers = {}
        for e in valid:
            known = triggers.get(e.user_id)
            triggers[e.user_id] = ((e.timestamp, 1) if known is None else
                                   (max(known[0], e.timestamp), known[1] + 1))
        return triggers

    async def send_triggers(triggers: Triggers, send: Sender | None = None) -> None:
        if triggers:
            await send_refreshes(triggers, send or send_batched)
            metrics.REFRESHES.inc(len(triggers))

    @app.on_after_configured.connect
    def _configured(app: faust.App, **_: Any) -> None:
        log.info("ingest app configured: %s -> %s", settings.kafka_bootstrap,
                 redact(settings.redis))

    return IngestParts(app, events_topic, refresh_topic, process, prepare, apply,
                       send_triggers)


def run_worker(app: faust.App, loglevel: str = "warning") -> None:
    """Run a Faust worker for ``app`` in this process until it is stopped (SIGINT/SIGTERM).

    When logging is already set up (the command line's text or JSON handlers), the worker keeps
    those handlers instead of installing its own coloured one."""
    handlers = list(logging.getLogger().handlers)
    keep: dict[str, Any] = {}
    if handlers:
        app.conf.loghandlers = handlers
        keep["logging_config"] = {"version": 1, "incremental": True}
    worker = RedactingWorker(app, loglevel=loglevel, quiet=True, **keep)
    if handlers:
        worker.spinner = None  # no terminal spinner codes in log files, no handler re-levelled
    settle_heap()  # streams/runtime.py: ~17 % less CPU per event for the ingest worker
    worker.execute_from_commandline()


class RedactingWorker(faust.Worker):
    """Faust's worker, with secrets masked in the logging it sets up (streams/redact.py)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        install_log_redaction(logger)
