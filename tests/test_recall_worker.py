"""Candidate recall and the rerank worker's micro-batch logic (real Redis for the worker)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from scripts.embedded import EmbeddedServices
from serving.chain import ScorerChain
from serving.decay_scorer import DecayCovisScorer
from serving.recall import RecallConfig, recall_candidates
from serving.worker import RerankWorker, Trigger, coalesce, parse_trigger
from streams.config import DecaySettings, Settings
from streams.contract import BehaviorEvent
from streams.store import ScoreStore


def test_recall_merges_sources_with_history_and_excludes_purchases() -> None:
    """Catches a source's strength or driver going wrong in the merge, an excluded (bought)
    item being recalled, and the shopper's own items missing from the candidates."""
    history = {"a": 10.0, "b": 1.0}
    covisits = {"a": [("c", 8.0), ("d", 4.0), ("b", 2.0)], "b": [("d", 5.0), ("e", 1.0)]}
    content = {"a": [("f", 0.9), ("c", 0.5)]}
    trending = [("g", 100.0), ("c", 50.0), ("a", 40.0)]
    cands = recall_candidates(history, covisits, trending, content, exclude={"e"},
                              config=RecallConfig(trend_weight=0.1))
    ids = [c.item_id for c in cands]
    assert "e" not in ids
    by_id = {c.item_id: c for c in cands}
    # own items are candidates of the history source (S), and may gain from other sources
    assert by_id["a"].sources["history"] == (pytest.approx(10.0), "a")
    assert by_id["a"].recall_score == pytest.approx(10 + 0.1 * 10 * 40 / 100)
    assert by_id["b"].sources["covisit"] == (pytest.approx(10 * 2 / 8), "a")
    # c: co-visited with a at full strength (10·8/8), content 10·0.5/0.9, trending 0.1·10·0.5
    assert by_id["c"].recall_score == pytest.approx(10 + 10 * 0.5 / 0.9 + 0.5)
    assert by_id["c"].sources["covisit"][1] == "a"
    # d is recalled by both a (10·4/8) and b (1·5/5); the reason names the stronger seed a
    assert by_id["d"].sources["covisit"] == (pytest.approx(6.0), "a")
    assert ids[0] == "c" and set(ids) == {"a", "b", "c", "d", "f", "g"}


def test_recall_for_a_new_shopper_is_trending() -> None:
    cands = recall_candidates({}, {}, [("x", 3.0), ("y", 1.0)])
    assert [c.item_id for c in cands] == ["x", "y"]
    assert all(set(c.sources) == {"trending"} for c in cands)


def test_triggers_coalesce_to_the_newest_event_time() -> None:
    raw = [json.dumps({"user_id": "u", "source_event_time": t}).encode() for t in (5, 9, 7)]
    raw += [b"garbage", json.dumps({"user_id": "v", "source_event_time": 1}).encode()]
    triggers = coalesce([t for t in map(parse_trigger, raw) if t is not None])
    assert [(t.user_id, t.source_event_time) for t in triggers] == [("u", 9.0), ("v", 1.0)]


def test_worker_ranks_excludes_purchases_and_explains(services: EmbeddedServices) -> None:
    now = time.time()
    decay = DecaySettings()
    events = [BehaviorEvent(f"e{k}", user, item, behavior, now - 60 + k)
              for k, (user, item, behavior) in enumerate([
                  ("other", "shirt", "view"), ("other", "jeans", "cart"),
                  ("other", "belt", "view"), ("other", "jeans", "view"),
                  ("me", "shirt", "purchase"), ("me", "hat", "view"),
                  ("third", "hat", "view"), ("third", "scarf", "cart"),
                  ("me", "jeans", "purchase")])]

    async def run() -> list[dict]:
        store = ScoreStore.from_url(services.redis_url, decay)
        await store.apply_batch(events)
        worker = RerankWorker(Settings(kafka_url=services.kafka_url,
                                       redis_url=services.redis_url), store,
                              ScorerChain.of(DecayCovisScorer({"jeans": "Blue Jeans"})))
        try:
            return await worker.rank([Trigger("me", now)])
        finally:
            await store.close()

    (message,) = asyncio.run(run())
    items = [it["item_id"] for it in message["items"]]
    assert "shirt" not in items and "jeans" not in items  # bought, and in the history
    assert "belt" in items and "scarf" in items  # co-visited with what "me" engaged with
    reasons = {it["item_id"]: it["reasons"] for it in message["items"]}
    assert any("you bought" in r for r in reasons["belt"])
    assert message["model_version"] == "decay-covis-1"


def test_lists_go_out_in_per_partition_batches_on_the_keys_partition(
        services: EmbeddedServices) -> None:
    """The worker hands lists to the producer one record batch per partition; each key must
    land on the partition ``send`` would pick (compared on a second topic of the same size)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    settings = Settings(kafka_url=services.kafka_url, redis_url=services.redis_url)
    topics = settings.topics
    keys = [f"user-{k}".encode() for k in range(300)]

    async def run() -> tuple[dict, dict]:
        store = ScoreStore.from_url(services.redis_url, DecaySettings())
        worker = RerankWorker(settings, store, ScorerChain.of(DecayCovisScorer()))
        worker.producer = AIOKafkaProducer(bootstrap_servers=services.kafka_url,
                                           enable_idempotence=False, max_batch_size=4096,
                                           partitioner=worker.partitioner)
        await worker.producer.start()
        try:  # 300 records of ~100 bytes overflow 4 KiB batches: several per partition
            sent = await worker._send_lists([(k, k * 10) for k in keys])
            await asyncio.gather(*sent)
            await asyncio.gather(*[await worker.producer.send(topics.events, key=k, value=k)
                                   for k in keys])
        finally:
            await worker.producer.stop()
            await store.close()
        found: dict[str, dict] = {topics.recommendations: {}, topics.events: {}}
        consumer = AIOKafkaConsumer(topics.recommendations, topics.events,
                                    bootstrap_servers=services.kafka_url,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            deadline = time.time() + 20
            while time.time() < deadline and sum(map(len, found.values())) < 2 * len(keys):
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    for r in records:
                        found[tp.topic].setdefault(r.key, []).append((tp.partition, r.value))
        finally:
            await consumer.stop()
        return found[topics.recommendations], found[topics.events]

    batched, plain = asyncio.run(run())
    assert set(batched) == set(plain) == set(keys)
    assert {k: v[0][0] for k, v in batched.items()} == {k: v[0][0] for k, v in plain.items()}
    assert all(v == [(v[0][0], k * 10)] for k, v in batched.items())
    assert len({v[0][0] for v in batched.values()}) > 1
