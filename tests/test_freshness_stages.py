"""Where a list's freshness goes: the rerank worker's per-stage histogram, the bench's reading of
it, and record batches that leave without waiting for the producer's linger (real Kafka)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client import REGISTRY

from scripts.bench_ingest import histogram_quantile, stage_quantiles
from scripts.embedded import EmbeddedServices
from serving.chain import ScorerChain
from serving.decay_scorer import DecayCovisScorer
from serving.worker import RerankWorker, coalesce, parse_trigger
from streams.config import DecaySettings, Settings
from streams.contract import BehaviorEvent
from streams.record_batches import send_record_batches
from streams.store import ScoreStore


def stage_totals() -> dict[str, tuple[float, float]]:
    """(count, sum) of each stage of ``stylestream_freshness_stage_seconds`` in this process."""
    name = "stylestream_freshness_stage_seconds"
    return {stage: (REGISTRY.get_sample_value(f"{name}_count", {"stage": stage}) or 0.0,
                    REGISTRY.get_sample_value(f"{name}_sum", {"stage": stage}) or 0.0)
            for stage in ("ingest", "trigger", "rank", "publish")}


def test_triggers_keep_the_emitted_at_of_their_newest_event() -> None:
    """Catches a coalesced trigger that pairs the newest event time with another trigger's send
    time (the ingest and trigger stages would be measured across two different triggers), a
    trigger refused for an unreadable ``emitted_at``, which only times the stages, and an
    infinite one kept (it would make the histogram's sum infinite for good)."""
    raw = [json.dumps({"user_id": "u", "source_event_time": t, "emitted_at": t + 0.5}).encode()
           for t in (5, 9, 7)]
    raw.append(json.dumps({"user_id": "v", "source_event_time": 1, "emitted_at": "x"}).encode())
    raw.append(b'{"user_id": "w", "source_event_time": 2, "emitted_at": Infinity}')
    triggers = coalesce([t for t in map(parse_trigger, raw) if t is not None])
    assert [(t.user_id, t.source_event_time, t.emitted_at) for t in triggers] == [
        ("u", 9.0, 9.5), ("v", 1.0, None), ("w", 2.0, None)]


def test_worker_times_each_stage_of_a_list(services: EmbeddedServices) -> None:
    """Catches per-stage freshness that is not recorded, or recorded from the wrong clocks: a
    trigger whose event is 2.0 s old and which was sent 0.5 s ago must add ~1.5 s to the
    ``ingest`` stage and at least 0.5 s to the ``trigger`` stage, and one sample each to
    ``rank`` and ``publish``, for the list the worker publishes over Kafka."""
    from aiokafka import AIOKafkaProducer

    settings = Settings(kafka_url=services.kafka_url, redis_url=services.redis_url)
    now = time.time()
    before = stage_totals()

    async def run() -> list[dict]:
        store = ScoreStore.from_url(services.redis_url, DecaySettings())
        await store.apply_batch([BehaviorEvent("e1", "staged", "hat", "view", now - 2.0)])
        worker = RerankWorker(settings, store, ScorerChain.of(DecayCovisScorer()))
        stop, published = asyncio.Event(), []

        def done(messages: list[dict]) -> None:
            published.extend(messages)
            stop.set()

        running = asyncio.create_task(worker.run(stop, on_published=done))
        producer = AIOKafkaProducer(bootstrap_servers=services.kafka_url,
                                    enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.refresh, key=b"staged", value=json.dumps(
                {"user_id": "staged", "source_event_time": now - 2.0,
                 "emitted_at": time.time() - 0.5, "events": 1}).encode())
            await asyncio.wait_for(running, 60)
        finally:
            await producer.stop()
            stop.set()
            await store.close()
        return published

    (message,) = asyncio.run(run())
    assert message["user_id"] == "staged"
    after = stage_totals()
    added = {stage: (after[stage][0] - before[stage][0], after[stage][1] - before[stage][1])
             for stage in after}
    assert added["ingest"][0] == 1 and added["ingest"][1] == pytest.approx(1.5, abs=0.05)
    assert added["trigger"][0] == 1 and 0.5 <= added["trigger"][1] < 30
    assert added["rank"][0] == 1 and added["publish"][0] == 1
    total = sum(seconds for _, seconds in added.values())
    assert total <= time.time() - (now - 2.0)  # the stages do not overlap


def test_histogram_quantiles_of_the_counts_between_two_reads() -> None:
    """Catches the bench's stage quantiles counting what the worker saw before the load (the
    warm-up) or interpolating outside the right bucket."""
    before = {"rank": [(0.01, 5.0), (0.02, 5.0), (float("inf"), 5.0)]}
    after = {"rank": [(0.01, 5.0), (0.02, 105.0), (float("inf"), 105.0)]}
    assert histogram_quantile(before["rank"], after["rank"], 0.5) == pytest.approx(0.015)
    assert stage_quantiles(before, after)["rank"]["p99_ms"] == pytest.approx(19.9)
    assert histogram_quantile(after["rank"], after["rank"], 0.5) is None


def test_record_batches_leave_without_the_producers_linger(services: EmbeddedServices) -> None:
    """Catches record batches handed over open: the producer then holds each for its whole
    ``linger_ms`` (here 5 s) before sending, on every trigger's and every list's path."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    async def run() -> float:
        partitioner = DefaultPartitioner()
        producer = AIOKafkaProducer(bootstrap_servers=services.kafka_url, linger_ms=5000,
                                    enable_idempotence=False, partitioner=partitioner)
        await producer.start()
        try:
            await producer.partitions_for("rec-refresh")  # metadata first: time the send only
            started = time.perf_counter()
            sent = await send_record_batches(producer, "rec-refresh",
                                             [(f"u{k}".encode(), b"{}") for k in range(20)],
                                             partitioner)
            await asyncio.gather(*sent)
            return time.perf_counter() - started
        finally:
            await producer.stop()

    assert asyncio.run(run()) < 2.5
