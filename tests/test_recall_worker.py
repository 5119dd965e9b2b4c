"""Candidate recall and the rerank worker's micro-batch logic (real Redis for the worker)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from scripts.embedded import EmbeddedServices
from serving.decay_scorer import DecayCovisScorer
from serving.recall import RecallConfig, recall_candidates
from serving.worker import RerankWorker, Trigger, coalesce, parse_trigger
from streams.config import DecaySettings, Settings
from streams.contract import BehaviorEvent
from streams.store import ScoreStore


def test_recall_merges_sources_and_excludes_history_and_purchases() -> None:
    history = {"a": 10.0, "b": 1.0}
    covisits = {"a": [("c", 8.0), ("d", 4.0), ("b", 2.0)], "b": [("d", 5.0), ("e", 1.0)]}
    content = {"a": [("f", 0.9), ("c", 0.5)]}
    trending = [("g", 100.0), ("c", 50.0), ("a", 40.0)]
    cands = recall_candidates(history, covisits, trending, content, exclude={"e"},
                              config=RecallConfig(trend_weight=0.1))
    ids = [c.item_id for c in cands]
    assert "a" not in ids and "b" not in ids and "e" not in ids
    by_id = {c.item_id: c for c in cands}
    # c: co-visited with a at full strength (10·8/8), content 10·0.5/0.9, trending 0.1·10·0.5
    assert by_id["c"].recall_score == pytest.approx(10 + 10 * 0.5 / 0.9 + 0.5)
    assert by_id["c"].sources["covisit"][1] == "a"
    # d is recalled by both a (10·4/8) and b (1·5/5); the reason names the stronger seed a
    assert by_id["d"].sources["covisit"] == (pytest.approx(6.0), "a")
    assert ids[0] == "c" and set(ids) == {"c", "d", "f", "g"}


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
                              DecayCovisScorer({"jeans": "Blue Jeans"}))
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
