"""The rerank worker publishes lists ranked by the trained fusion network (real Redis)."""

from __future__ import annotations

import asyncio
import time

from scripts.embedded import EmbeddedServices
from serving.fusion_scorer import FusionScorer
from serving.pipeline import ServingOptions, build_worker
from serving.worker import Trigger
from streams.config import Settings
from streams.contract import BehaviorEvent


def test_worker_ranks_with_the_network(trained, services: EmbeddedServices) -> None:
    checkpoint, store, _, _ = trained
    settings = Settings(kafka_url=services.kafka_url, redis_url=services.redis_url)
    worker = build_worker(settings, ServingOptions(features=str(store.parent),
                                                   checkpoint=str(checkpoint), rules=False))
    (fusion,) = worker.scorer.stages
    assert isinstance(fusion, FusionScorer)
    now = time.time()
    # "crowd" co-visits even and odd items alike, so recall offers both kinds to "newcomer",
    # who carted two even-style items; the toy network learned that even goes with even
    crowd = [BehaviorEvent(f"c{k}", f"crowd{k % 3}", f"i{k % 17}", "view", now - 100 + k)
             for k in range(60)]
    mine = [BehaviorEvent("n1", "newcomer", "i0", "cart", now - 10),
            BehaviorEvent("n2", "newcomer", "i2", "cart", now - 9)]

    async def run() -> tuple[dict, dict[str, float]]:
        await worker.store.apply_batch(crowd + mine)
        try:
            (message,) = await worker.rank([Trigger("newcomer", now)])
            (shopper,) = await worker.shopper_contexts([Trigger("newcomer", now)], time.time())
        finally:
            await worker.store.close()
        return message, shopper

    message, shopper = asyncio.run(run())
    assert message["model_version"] == worker.scorer.version
    items = message["items"]
    assert len(items) == 5
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)
    # the published scores are the network's own scores for those candidates
    from serving.scorer import Candidate, RerankRequest

    direct = {s.item_id: s.score for s in worker.scorer.score(RerankRequest(
        [shopper], [[Candidate(it["item_id"]) for it in items]], now))[0]}
    for it in items:
        assert abs(direct[it["item_id"]] - it["score"]) < 1e-4
    even = [int(it["item_id"][1:]) % 2 == 0 for it in items]
    assert sum(even[:3]) >= 2, items  # the network's preference shows at the top
    assert all(it["reasons"] for it in items)
