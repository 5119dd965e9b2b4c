"""The rerank worker: ``rec-refresh`` triggers in, Top-5 lists out.

Per micro-batch (``getmany``, at most ``max_batch`` triggers):

1. coalesce triggers of the same shopper (keep the newest source event time);
2. read each shopper's decayed scores, behaviours and location from Redis (closed form, Eq. 3);
3. recall candidates (co-visitation, content neighbours, trending; ``serving.recall``);
4. score all shoppers' candidates in one :class:`~serving.scorer.RerankRequest` (with the
   batch's popularity snapshot when a stage reads it) through the
   :class:`~serving.chain.ScorerChain` (the fusion network micro-batches them on the GPU when
   present);
5. publish the Top-5 message of the contract to ``recommendations`` (key = user id) and to
   ``rec:{user}`` in Redis, then commit the consumed offsets (at-least-once: a crash re-sends
   lists, never loses a trigger).

Alongside, when an :class:`~serving.catalog_updates.ItemOnboarder` is given, a second consumer
follows ``catalog-updates``: new items are encoded in a thread (``asyncio.to_thread``, so the
refresh path stays responsive) and then added to the content index and the chain's stages on
the event loop, between two refresh micro-batches (new-item cold start without a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from redis.exceptions import RedisError

from serving import metrics
from serving.diversity import DiversityConfig, ItemFacts, final_list
from serving.recall import (
    ContentIndex,
    RecallConfig,
    popularity_items,
    recall_batch,
    seed_items,
)
from serving.scorer import PopularitySnapshot, RerankRequest, ScoredItem, ShopperContext
from streams.config import Settings
from streams.health import HealthState, keep_probing
from streams.record_batches import send_record_batches
from streams.retry import retry_until_done
from streams.security import kafka_client_kwargs
from streams.store import ScoreStore
from streams.transport import fetch_wait_ms

if TYPE_CHECKING:
    from serving.catalog_updates import ItemOnboarder
    from serving.chain import ScorerChain

log = logging.getLogger(__name__)

TOP_K = 5
REC_KEY_PREFIX = "rec:"
#: what makes a micro-batch wait and retry instead of being skipped: Redis or Kafka unreachable
UNAVAILABLE = (RedisError, KafkaError, OSError)
#: refresh triggers per micro-batch at most (``stylestream rerank --max-batch``)
MAX_BATCH = 256
#: the ``catalog-updates`` follower's fetch wait, ms: a new item may wait this long to be
#: onboarded, and an idle follower costs the broker and this worker next to nothing (at the
#: refresh consumer's 10 ms it cost the broker ~0.04 and this process ~0.03 cores, measured:
#: CPU the refresh path needs on a busy box)
CATALOG_FETCH_WAIT_MS = 500


@dataclass
class Trigger:
    user_id: str
    source_event_time: float
    #: when the ingest worker sent the trigger (its ``emitted_at``), if it says
    emitted_at: float | None = None


def parse_trigger(raw: bytes | None) -> Trigger | None:
    """A ``rec-refresh`` value → :class:`Trigger`; ``None`` (counted) when unreadable. An
    unreadable ``emitted_at`` (only used to time the stages) is left out, not refused."""
    try:
        data = json.loads(raw or b"")
        trigger = Trigger(str(data["user_id"]), float(data["source_event_time"]))
    except (ValueError, KeyError, TypeError):
        metrics.BAD_TRIGGERS.inc()
        return None
    with contextlib.suppress(ValueError, TypeError):
        emitted_at = float(data.get("emitted_at"))
        trigger.emitted_at = emitted_at if math.isfinite(emitted_at) else None
    return trigger


def coalesce(triggers: list[Trigger]) -> list[Trigger]:
    """One trigger per shopper, carrying the newest source event time (and that trigger's
    ``emitted_at``); order of first arrival."""
    newest: dict[str, Trigger] = {}
    for trig in triggers:
        kept = newest.get(trig.user_id)
        if kept is None:
            newest[trig.user_id] = trig
        else:
            metrics.COALESCED.inc()
            if trig.source_event_time > kept.source_event_time:
                kept.source_event_time, kept.emitted_at = (trig.source_event_time,
                                                           trig.emitted_at)
    return list(newest.values())


def observe_stages(triggers: list[Trigger], received_at: float, generated_at: float,
                   published_at: float) -> None:
    """Each list's freshness split into :data:`serving.metrics.STAGES`
    (``stylestream_freshness_stage_seconds``): the trigger's own times, then this worker's."""
    ingest, trigger = (metrics.STAGE_LAG.labels(stage) for stage in ("ingest", "trigger"))
    for trig in triggers:
        if trig.emitted_at is not None:
            ingest.observe(max(0.0, trig.emitted_at - trig.source_event_time))
            trigger.observe(max(0.0, received_at - trig.emitted_at))
    metrics.STAGE_LAG.labels("rank").observe(max(0.0, generated_at - received_at))
    metrics.STAGE_LAG.labels("publish").observe(max(0.0, published_at - generated_at))


def recommendation_message(user_id: str, items: list[ScoredItem], model_version: str,
                           source_event_time: float, generated_at: float) -> dict:
    """The contract's recommendation message (docs/design.md, "Topic contracts")."""
    return {
        "user_id": user_id,
        "generated_at": generated_at,
        "model_version": model_version,
        "source_event_time": source_event_time,
        "items": [{"item_id": it.item_id, "score": round(float(it.score), 6),
                   "reasons": it.reasons} for it in items],
    }


class RerankWorker:
    """Recall → score → publish, for micro-batches of refresh triggers."""

    def __init__(self, settings: Settings, store: ScoreStore, scorer: ScorerChain,
                 content_index: ContentIndex | None = None,
                 recall_config: RecallConfig | None = None,
                 max_batch: int = MAX_BATCH,
                 clock: Callable[[], float] = time.time,
                 onboarder: ItemOnboarder | None = None,
                 item_facts: Mapping[str, ItemFacts] | None = None,
                 diversity: DiversityConfig | None = None,
                 event_clock: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.scorer = scorer
        self.content_index = content_index
        self.recall_config = recall_config or RecallConfig()
        self.max_batch = max_batch
        self.rec_ttl_seconds = settings.rec_ttl_seconds
        self.clock = clock
        self.onboarder = onboarder
        self.item_facts = item_facts or {}
        self.diversity = diversity or DiversityConfig()
        #: read the state at the newest source event time of the batch instead of the wall
        #: clock (replaying a historical log); every ranking feature is clock-invariant, only
        #: the reasons' "2 days ago" and the published scores' scale depend on it
        self.event_clock = event_clock
        self.producer: AIOKafkaProducer | None = None
        #: ``/readyz`` state, when the worker serves health (``stylestream rerank``)
        self.health: HealthState | None = None
        self.partitioner = DefaultPartitioner()  # the producer's: key -> partition
        metrics.MODEL_VERSION.labels(scorer.version).set(1)

    async def shopper_contexts(self, triggers: list[Trigger], at: float
                               ) -> list[ShopperContext]:
        profiles = await self.store.user_profiles([t.user_id for t in triggers], at)
        return [ShopperContext(
            user_id=t.user_id, now=at, scores=p["scores"], behaviors=p["behaviors"],
            purchased={i for i, b in p["behaviors"].items() if b == "purchase"},
            last_touch=p["last_touch"], last_event_time=p["last_event_time"],
            lat=p["lat"], lon=p["lon"]) for t, p in zip(triggers, profiles, strict=True)]

    async def rank(self, triggers: list[Trigger]) -> list[dict]:
        """Recall and score for coalesced triggers; returns the messages (not yet published)."""
        at = (max(t.source_event_time for t in triggers) if self.event_clock
              else self.clock())
        shoppers = await self.shopper_contexts(triggers, at)
        seeds = seed_items(shoppers, self.recall_config)
        covisits, trending = await self.store.recall_sources(
            seeds, at, self.recall_config.covisit_per_item, self.recall_config.trending)
        content = (self.content_index.neighbours(seeds, self.recall_config.content_per_item)
                   if self.content_index is not None and seeds else {})
        candidates, excluded = recall_batch(shoppers, covisits, trending, content,
                                            self.recall_config)
        for cands in candidates:
            metrics.CANDIDATES.observe(len(cands))
        popularity = PopularitySnapshot()
        if self.scorer.reads_popularity:
            popularity = PopularitySnapshot.of(
                await self.store.popularity_of(popularity_items(shoppers, candidates), at),
                trending)
        if self.scorer.maybe_reload():
            metrics.MODEL_VERSION.clear()  # the dashboard shows the version now in use
            metrics.MODEL_VERSION.labels(self.scorer.version).set(1)
        started = time.perf_counter()
        scored = self.scorer.score(RerankRequest(shoppers, candidates, at, popularity))
        metrics.SCORE_LATENCY.observe(time.perf_counter() - started)
        generated_at = self.clock()
        # calibrated scores (the final ranker's chances of a hit): per-shopper repeat/explore
        calibrated = self.scorer.calibrated
        messages = []
        for trig, shopper, shopper_excluded, items in zip(triggers, shoppers, excluded, scored,
                                                          strict=True):
            ranked = final_list(items, shopper_excluded, TOP_K, self.item_facts, self.diversity,
                                set(shopper.scores), calibrated)
            messages.append(recommendation_message(trig.user_id, ranked, self.scorer.version,
                                                   trig.source_event_time, generated_at))
        return messages

    async def _send_lists(self, records: list[tuple[bytes, bytes]]) -> list[asyncio.Future]:
        """Hand (key, value) records to the producer as one record batch per partition
        (``send_batch``) instead of one ``send`` each: a third of the producer's CPU per list.
        Partitions come from the producer's own partitioner, so a key lands where ``send``
        would put it; order within a partition is the order given."""
        assert self.producer is not None
        return await send_record_batches(self.producer, self.settings.topics.recommendations,
                                         records, self.partitioner)

    async def publish(self, messages: list[dict]) -> float:
        """Send ``messages`` to ``recommendations`` and ``rec:{user}``; when Kafka acknowledged
        them (wall clock)."""
        assert self.producer is not None
        records = []
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for msg in messages:
                body = json.dumps(msg, separators=(",", ":")).encode()
                records.append((msg["user_id"].encode(), body))
                pipe.set(REC_KEY_PREFIX + msg["user_id"], body, ex=self.rec_ttl_seconds)
            sends = await self._send_lists(records)
            await pipe.execute()
        await asyncio.gather(*sends)
        published_at = time.time()
        for msg in messages:
            metrics.FRESHNESS.observe(max(0.0, published_at - msg["source_event_time"]))
        metrics.PUBLISHED.inc(len(messages))
        return published_at

    async def handle(self, raw_values: list[bytes | None],
                     received_at: float | None = None) -> list[dict]:
        """Rank and publish the lists of a micro-batch of trigger values, taken from Kafka at
        ``received_at`` (wall clock; default now)."""
        received_at = time.time() if received_at is None else received_at
        started = time.perf_counter()
        triggers = coalesce([t for t in map(parse_trigger, raw_values) if t is not None])
        if not triggers:
            return []
        metrics.MICRO_BATCH.observe(len(triggers))
        messages = await self.rank(triggers)
        published_at = await self.publish(messages)
        metrics.RERANK_LATENCY.observe(time.perf_counter() - started)
        observe_stages(triggers, received_at, messages[0]["generated_at"], published_at)
        return messages

    async def handle_with_retry(self, raw_values: list[bytes | None],
                                stop: asyncio.Event, received_at: float | None = None
                                ) -> list[dict]:
        """:meth:`handle`, retried with backoff while Redis or Kafka are unreachable; a batch
        that fails for any other reason is logged and counted, and the worker goes on."""
        def unavailable(exc: BaseException, delay: float) -> None:
            self._note_failure(exc)
            log.warning("services unavailable (%s); retrying in %.1fs", exc, delay)

        try:
            return await retry_until_done(lambda: self.handle(raw_values, received_at),
                                          UNAVAILABLE, unavailable, stop)
        except UNAVAILABLE:
            raise  # only while stopping
        except Exception:
            log.exception("rerank of a micro-batch failed; its triggers are skipped")
            metrics.FAILED_BATCHES.inc()
            return []

    def _note_failure(self, exc: BaseException) -> None:
        if self.health is not None:
            self.health.record_exception(exc, self.settings)

    async def _start_with_retry(self, client: AIOKafkaConsumer | AIOKafkaProducer, what: str,
                                stop: asyncio.Event) -> bool:
        """``client.start()``, retried with capped exponential backoff (a log line per
        attempt) while Kafka is unreachable; False when ``stop`` was set first."""
        delay = 0.5
        attempt = 0
        while not stop.is_set():
            attempt += 1
            try:
                await client.start()
                return True
            except KafkaError as exc:
                self._note_failure(exc)
                log.warning("%s: Kafka unavailable (attempt %d: %s); next try in %.1fs", what,
                            attempt, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(2 * delay, 10.0)
        return False

    async def _commit_with_retry(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Commit consumed offsets, retrying while Kafka is unreachable. A commit refused
        after a rebalance is given up: the new owner re-sends those lists (at-least-once)."""
        async def commit() -> None:
            try:
                await consumer.commit()
            except CommitFailedError as exc:
                log.warning("offset commit refused after a rebalance (%s); the triggers will "
                            "be handled again", exc)

        def failed(exc: BaseException, delay: float) -> None:
            self._note_failure(exc)
            log.warning("offset commit failed (%s); retrying in %.1fs", exc, delay)

        await retry_until_done(commit, (KafkaError,), failed, stop)

    async def onboard(self, records: list[tuple[bytes | None, bytes | None]]) -> int:
        """Onboard a micro-batch of ``catalog-updates`` (key, value) records; returns how many
        items were applied. Bad records and failed batches are logged and counted, never
        raised."""
        assert self.onboarder is not None
        items = self.onboarder.read(records)
        if not items:
            return 0
        try:
            prepared = await asyncio.to_thread(self.onboarder.prepare, items, self.scorer)
            self.onboarder.apply(prepared)
        except Exception:
            log.exception("onboarding %d new catalog items failed; they are skipped",
                          len(items))
            self.onboarder.count_failed(len(items))
            return 0
        log.info("onboarded %d catalog items", len(items))
        return len(items)

    async def follow_catalog(self, stop: asyncio.Event) -> None:
        """Consume ``catalog-updates`` until ``stop`` is set (a task beside :meth:`run`).

        Every rerank worker reads *all* partitions from the beginning, without a consumer group
        or committed offsets: onboarded items live in this process's index only, so each worker
        of the ``stylestream-rerank`` group needs every item (a broadcast, not a split), and a
        restarted worker must onboard them again. Keep the topic compacted by item id
        (``cleanup.policy=compact``) so that replay stays one record per item."""
        consumer = AIOKafkaConsumer(
            self.settings.topics.catalog, bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
            fetch_max_wait_ms=CATALOG_FETCH_WAIT_MS,
            **kafka_client_kwargs(self.settings, "aiokafka"))
        if not await self._start_with_retry(consumer, "catalog-updates consumer", stop):
            return
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=CATALOG_FETCH_WAIT_MS,
                                                 max_records=self.max_batch)
                records = [(r.key, r.value) for part in batches.values() for r in part]
                if records:
                    await self.onboard(records)
        finally:
            await consumer.stop()

    async def run(self, stop: asyncio.Event | None = None,
                  on_published: Callable[[list[dict]], None] | None = None) -> None:
        """Consume ``rec-refresh`` until ``stop`` is set."""
        stop = stop or asyncio.Event()
        bootstrap = self.settings.kafka_bootstrap
        consumer = AIOKafkaConsumer(
            self.settings.topics.refresh, bootstrap_servers=bootstrap,
            group_id=self.settings.rerank_group, auto_offset_reset="earliest",
            enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=2000,
            fetch_max_wait_ms=fetch_wait_ms(), **kafka_client_kwargs(self.settings, "aiokafka"))
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2,
                                         enable_idempotence=False,
                                         max_batch_size=256 * 1024,
                                         partitioner=self.partitioner,
                                         **kafka_client_kwargs(self.settings, "aiokafka"))
        health = self.health
        probing = None
        if health is not None:
            topics = self.settings.topics
            probing = asyncio.create_task(keep_probing(
                health, self.settings, [topics.refresh, topics.recommendations], stop),
                name="health-probe")
            health.consuming = lambda: bool(consumer.assignment())
        if not (await self._start_with_retry(consumer, "rec-refresh consumer", stop)
                and await self._start_with_retry(self.producer, "recommendations producer",
                                                 stop)):
            await consumer.stop()
            await self.producer.stop()
            if probing is not None:
                await probing
            return
        catalog = (asyncio.create_task(self.follow_catalog(stop), name="catalog-updates")
                   if self.onboarder is not None else None)
        try:
            while not stop.is_set():
                if health is not None:
                    health.loop_tick()
                if catalog is not None and catalog.done():
                    log.error("catalog-updates consumer stopped (%r): new items are no longer "
                              "onboarded; refreshes go on", catalog.exception())
                    catalog = None
                batches = await consumer.getmany(timeout_ms=50, max_records=self.max_batch)
                received_at = time.time()
                records = [r for part in batches.values() for r in part]
                if not records:
                    continue
                if health is not None:
                    health.batch_started()
                messages = await self.handle_with_retry([r.value for r in records], stop,
                                                        received_at)
                await self._commit_with_retry(consumer, stop)
                if health is not None:
                    health.batch_done()
                if on_published is not None and messages:
                    on_published(messages)
        finally:
            if catalog is not None:
                if not stop.is_set():
                    catalog.cancel()
                await asyncio.gather(catalog, return_exceptions=True)
            await consumer.stop()
            await self.producer.stop()
            if probing is not None:
                probing.cancel()
                await asyncio.gather(probing, return_exceptions=True)
