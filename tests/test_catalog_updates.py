"""New-item cold start online: catalog-updates → encoders → FAISS index → ranked list.

Real embedded broker + Redis, a real (tiny) demo catalog and feature store; the worker is the one
``serving.pipeline.build_worker`` assembles for ``stylestream rerank``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from models.catalog import CatalogItem
from models.demo_catalog import generate_demo_catalog
from models.feature_store import FeatureStore, build_store
from models.fusion import FusionConfig, FusionRanker, save_checkpoint
from scripts.embedded import EmbeddedServices
from serving.catalog_updates import (
    CatalogRecordError,
    ItemOnboarder,
    extract_config,
    parse_catalog_update,
    read_updates,
)
from serving.chain import ScorerChain
from serving.fusion_scorer import FusionScorer
from serving.pipeline import ServingOptions, build_worker
from serving.recall import recall_candidates
from serving.rule_scorer import RuleScorer
from serving.scorer import Candidate, RerankRequest, ShopperContext
from serving.worker import RerankWorker, Trigger
from streams.config import DecaySettings, Settings
from streams.contract import BehaviorEvent
from streams.store import ScoreStore
from tests.fusion_toy import tiny_extract

torch.set_num_threads(1)
CONFIG = tiny_extract(batch_size=8)


def _outcome(outcome: str) -> float:
    return REGISTRY.get_sample_value("stylestream_catalog_updates_total",
                                     {"outcome": outcome}) or 0.0


def _record(item: CatalogItem) -> bytes:
    return json.dumps(asdict(item)).encode()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[CatalogItem], Path]:
    catalog = tmp_path_factory.mktemp("catalog")
    items = generate_demo_catalog(catalog, n_items=20, n_stores=2, seed=3)
    store = build_store(catalog, tmp_path_factory.mktemp("features"), CONFIG, progress=False)
    return catalog, items, store.path


# ---- parsing ---------------------------------------------------------------------------------
def test_parse_accepts_a_record_and_rejects_bad_ones_with_a_reason() -> None:
    good = {"item_id": 42, "title": "Red Dress", "category": "Dresses", "group": "Dress",
            "price": 19.5, "image": None, "unknown": "ignored"}
    item = parse_catalog_update(b"42", json.dumps(good).encode())
    assert item.item_id == "42" and item.price == 19.5 and item.gender == "Unisex"
    bad = {
        b"": "empty",
        b"\xff\xfe": "UTF-8",
        b"{not json": "JSON",
        b"[1, 2]": "JSON object",
        json.dumps({**good, "title": ""}).encode(): "'title'",
        json.dumps({k: v for k, v in good.items() if k != "group"}).encode(): "'group'",
        json.dumps({**good, "price": -3}).encode(): "'price'",
        json.dumps({**good, "price": True}).encode(): "'price'",
        json.dumps({**good, "image": 7}).encode(): "'image'",
        json.dumps({**good, "extra": {"a": 1}}).encode(): "'extra'",
    }
    for value, reason in bad.items():
        with pytest.raises(CatalogRecordError, match=reason):
            parse_catalog_update(None, value)
    with pytest.raises(CatalogRecordError, match="differs from item_id"):
        parse_catalog_update(b"41", json.dumps(good).encode())


def test_read_updates_counts_invalid_and_keeps_the_last_record_per_item() -> None:
    first = CatalogItem("n1", "Blue Jeans", "Jeans", "Bottomwear")
    second = replace(first, title="Dark Blue Jeans")
    invalid_before = _outcome("invalid")
    items = read_updates([(b"n1", _record(first)), (None, b"garbage"),
                          (b"n1", _record(second)), (b"x", None)])
    assert [(i.item_id, i.title) for i in items] == [("n1", "Dark Blue Jeans")]
    assert _outcome("invalid") - invalid_before == 2


# ---- onboarding without Kafka ----------------------------------------------------------------
def test_onboarder_reproduces_the_store_encoding_and_extends_the_rule_stage(demo) -> None:
    """Catches new items encoded unlike the store's (other encoders or fusion network), and
    a rule stage that does not learn the new item's catalog entry or visual vector."""
    catalog, items, store_path = demo
    store = FeatureStore.load(store_path)
    assert extract_config(store.meta) == replace(CONFIG, text_model=store.meta["text_model"])
    existing = items[7]
    rules = RuleScorer({i.item_id: i for i in [*items[:5], existing]},
                       dict(zip(store.ids, store.visual, strict=True)))
    chain = ScorerChain.of(rules)
    onboarder = ItemOnboarder(store, catalog)
    # re-encoding an item the store holds gives its stored fused vector: same encoders and
    # the same seeded fusion network as build_store
    prepared = onboarder.prepare([existing], chain)
    assert prepared.fused is not None
    np.testing.assert_allclose(prepared.fused[0], store.fused[store.rows[existing.item_id]],
                               atol=1e-4)
    # a new item with an absolute image path and no catalog entry yet
    new = replace(existing, item_id="N-1", image=str(catalog / existing.image))
    onboarder.onboard([new], chain)
    assert chain.stages == (rules,)  # the stage took the item; nothing was swapped in
    assert "N-1" in rules.catalog and len(rules.catalog) == 7
    assert store.neighbours([existing.item_id], 1)[existing.item_id][0][0] == "N-1"
    # same picture: the rule stage sees the new item as the existing one's visual twin
    shopper = ShopperContext("u", 0.0, scores={existing.item_id: 1.0})
    (terms,) = rules.terms(shopper, ["N-1"], {})
    assert terms.anchor == existing.item_id and terms.visual == pytest.approx(1.0, abs=1e-4)


def test_a_store_refused_by_the_serving_checkpoint_is_extended_with_it(demo, tmp_path) -> None:
    catalog, items, store_path = demo
    torch.manual_seed(7)  # another network than the store's untrained seed-0 one
    model = FusionRanker(FusionConfig(visual_in=1280, text_in=384)).eval()
    store = FeatureStore.load(store_path)
    store.refuse(model, fused_by="ck-1")
    store.save(tmp_path / "features" / "features-ck-1")
    checkpoint = save_checkpoint(tmp_path / "model.pt", model, version="ck-1", users=[])
    fusion = FusionScorer(checkpoint, tmp_path / "features", device="cpu")
    catalog_items = {i.item_id: i for i in items}
    existing = items[2]
    new = replace(existing, item_id="N-4", image=str(catalog / existing.image))
    # without the checkpoint the store cannot be extended consistently: rule catalog only
    alone = RuleScorer(catalog_items)
    ItemOnboarder(store, catalog).onboard([new], ScorerChain.of(alone))
    assert "N-4" in alone.catalog and "N-4" not in store.rows
    onboarder = ItemOnboarder(store, catalog)
    rules = RuleScorer(catalog_items, base=fusion)
    chain = ScorerChain((fusion, rules))
    prepared = onboarder.prepare([existing], chain)
    assert prepared.fused is not None
    np.testing.assert_allclose(prepared.fused[0], store.fused[store.rows[existing.item_id]],
                               atol=1e-4)
    onboarder.onboard([new], chain)
    assert chain.stages == (fusion, rules) and rules.base is fusion
    assert "N-4" in fusion.state.rows and "N-4" in rules.catalog
    assert store.neighbours([existing.item_id], 1)[existing.item_id][0][0] == "N-4"
    shopper = ShopperContext("u", time.time(), scores={existing.item_id: 5.0},
                             behaviors={existing.item_id: "cart"})
    (scored,) = fusion.score(RerankRequest([shopper], [[Candidate("N-4")]], shopper.now))
    assert scored[0].reasons != ["no item features yet"]
    assert scored[0].reasons[0].endswith(f"{existing.item_id} you carted")


def test_without_a_feature_store_items_still_join_the_rule_catalog(demo) -> None:
    _, items, _ = demo
    rules = RuleScorer({i.item_id: i for i in items})
    new = CatalogItem("N-2", "Black Cap", "Caps", "Headwear", image=None)
    ItemOnboarder(None).onboard([new], ScorerChain.of(rules))
    assert rules.catalog["N-2"].title == "Black Cap"


def test_onboarding_under_a_final_ranker_keeps_the_ranker(demo, tmp_path) -> None:
    """Catches onboarding that drops or replaces a stage of the built chain, or that cannot
    reach the rule stage under a final ranker."""
    from models.next_event import NextEventRanker, RankerConfig, save_ranker
    from serving.next_event_scorer import NextEventScorer
    from serving.pair_features import FEATURES

    _, items, _ = demo
    path = save_ranker(tmp_path / "ranker.pt", NextEventRanker(RankerConfig(len(FEATURES))),
                       version="r", feature_names=FEATURES)
    rules = RuleScorer({i.item_id: i for i in items})
    ranker = NextEventScorer(path, rules)
    chain = ScorerChain((rules, ranker))
    new = CatalogItem("N-5", "Red Cap", "Caps", "Headwear", image=None)
    ItemOnboarder(None).onboard([new], chain)
    assert chain.stages == (rules, ranker) and ranker.base is rules
    assert rules.catalog["N-5"].title == "Red Cap"


def test_a_failing_batch_is_counted_and_the_worker_keeps_its_scorer(demo, tmp_path) -> None:
    catalog, items, store_path = demo
    store = FeatureStore.load(store_path)
    store.meta["text_model"] = str(tmp_path / "moved-away")  # the encoders cannot load
    rules = RuleScorer({i.item_id: i for i in items})
    chain = ScorerChain.of(rules)
    new = replace(items[0], item_id="N-3")

    async def onboard() -> tuple[int, RerankWorker]:
        redis = ScoreStore.from_url("redis://127.0.0.1:9/0", DecaySettings())  # never used
        worker = RerankWorker(Settings(), redis, chain, content_index=store,
                              onboarder=ItemOnboarder(store, catalog))
        try:
            return await worker.onboard([(b"N-3", _record(new))]), worker
        finally:
            await redis.close()

    failed = _outcome("failed")
    applied, worker = asyncio.run(onboard())
    assert applied == 0 and worker.scorer is chain and "N-3" not in rules.catalog
    assert _outcome("failed") - failed == 1 and "N-3" not in store.rows


# ---- the running worker ----------------------------------------------------------------------
def test_worker_onboards_a_new_item_and_recommends_it(demo, services: EmbeddedServices) -> None:
    catalog, items, store_path = demo
    lookalike = items[4]
    new = replace(lookalike, item_id="NEW-1", image=str(catalog / lookalike.image),
                  description=lookalike.description + " New season.")
    settings = Settings(kafka_url=services.kafka_url, redis_url=services.redis_url)
    worker = build_worker(settings, ServingOptions(catalog_dir=str(catalog),
                                                   features=str(store_path.parent)))
    assert worker.onboarder is not None and isinstance(worker.content_index, FeatureStore)
    store = worker.content_index
    assert all(n != "NEW-1" for n, _ in store.neighbours([lookalike.item_id], 5)[
        lookalike.item_id])
    applied, invalid = _outcome("applied"), _outcome("invalid")

    async def scenario() -> tuple[list[dict], list]:
        now = time.time()
        await worker.store.apply_batch([
            # bought: the item itself leaves the lists (a carted one would lead them, and its
            # new-season twin would then be held back as its near-duplicate)
            BehaviorEvent("e1", "fan", lookalike.item_id, "purchase", now - 5),
            BehaviorEvent("e2", "other", items[9].item_id, "view", now - 4)])
        published: list[dict] = []
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, on_published=published.extend))
        producer = _producer(services)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.catalog, key=b"bad", value=b"{oops")
            await producer.send_and_wait(settings.topics.catalog, key=b"NEW-1",
                                         value=_record(new))
            await _until(lambda: _outcome("applied") > applied, 30)
            # the worker keeps serving: a refresh after both catalog records gets its list
            trigger = json.dumps({"user_id": "fan", "source_event_time": time.time()})
            await producer.send_and_wait(settings.topics.refresh, key=b"fan",
                                         value=trigger.encode())
            await _until(lambda: bool(published), 20)
            (shopper,) = await worker.shopper_contexts([Trigger("fan", 0.0)], time.time())
        finally:
            stop.set()
            await producer.stop()
            await task
            await worker.store.close()
        content = store.neighbours([lookalike.item_id], worker.recall_config.content_per_item)
        return published, recall_candidates(shopper.scores, {}, [], content)

    published, candidates = asyncio.run(scenario())
    assert _outcome("invalid") - invalid == 1 and _outcome("applied") - applied == 1
    assert store.neighbours([lookalike.item_id], 1)[lookalike.item_id][0][0] == "NEW-1"
    recalled = {c.item_id: c for c in candidates}
    assert "content" in recalled["NEW-1"].sources
    rules = worker.scorer.top
    assert isinstance(rules, RuleScorer) and "NEW-1" in rules.catalog
    (message,) = [m for m in published if m["user_id"] == "fan"]
    top = [it["item_id"] for it in message["items"]]
    assert top[0] == "NEW-1", message
    assert any("similar image to" in r for r in message["items"][0]["reasons"])


def test_a_restarted_worker_onboards_earlier_catalog_items_again(
        demo, services: EmbeddedServices) -> None:
    """Onboarded items live in the worker's memory: a new worker (a restart, or a second worker
    of the group) replays catalog-updates from the start and knows them too."""
    catalog, items, store_path = demo
    new = replace(items[2], item_id="NEW-R", image=str(catalog / items[2].image))
    settings = Settings(kafka_url=services.kafka_url, redis_url=services.redis_url)

    async def produce() -> None:
        producer = _producer(services)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.catalog, key=b"NEW-R",
                                         value=_record(new))
        finally:
            await producer.stop()

    async def run_until_onboarded() -> FeatureStore:
        worker = build_worker(settings, ServingOptions(catalog_dir=str(catalog),
                                                       features=str(store_path.parent)))
        store = worker.content_index
        assert isinstance(store, FeatureStore) and "NEW-R" not in store.rows
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await _until(lambda: "NEW-R" in store.rows, 30)
        finally:
            stop.set()
            await task
            await worker.store.close()
        return store

    asyncio.run(produce())
    first = asyncio.run(run_until_onboarded())
    second = asyncio.run(run_until_onboarded())
    assert first is not second and "NEW-R" in second.rows


def _producer(services: EmbeddedServices):
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=services.kafka_url.split("://")[-1])


async def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s")
        await asyncio.sleep(0.05)

