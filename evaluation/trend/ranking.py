"""Top-k per purchase through the online ranker, with every metric's ingredient per row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.trend.simulation import World


@dataclass
class RecRow:
    """One recommended item for one purchase, with every metric's ingredient."""

    user_id: str
    trendiness: float
    purchase: str
    item_id: str
    category_similarity: float
    same_category: bool
    gender_ok: bool
    popularity_error: float


def recommend(world: World, items: list, vectors: dict[str, np.ndarray], rule_config,
              k: int) -> list[RecRow]:
    """Top-``k`` per purchase through :class:`RuleScorer` (the online ranker)."""
    from models.gender import gender_compatible
    from models.popularity import norm_pop
    from serving.rule_scorer import RuleScorer
    from serving.rules.category import category_similarity
    from serving.scorer import Candidate, PopularitySnapshot, RerankRequest, ShopperContext

    scorer = RuleScorer(items, vectors, config=rule_config)
    popularity = PopularitySnapshot(world.popularity)
    normpop = norm_pop(world.popularity)
    catalog = {i.item_id: i for i in items}
    users = {u.user_id: u for u in world.sim.users}  # type: ignore[attr-defined]
    bought: dict[str, set[str]] = {}
    for event in world.purchases:
        bought.setdefault(event["user_id"], set()).add(event["item_id"])
    candidates = [Candidate(i.item_id) for i in items]
    rows = []
    for event in world.purchases:
        user = users[event["user_id"]]
        anchor = event["item_id"]
        shopper = ShopperContext(user_id=user.user_id, now=event["timestamp"],
                                 scores={anchor: 1.0}, behaviors={anchor: "purchase"},
                                 purchased=bought[user.user_id], trendiness=user.trendiness,
                                 gender=user.gender)
        [scored] = scorer.score(RerankRequest([shopper], [candidates], shopper.now, popularity))
        top = sorted(scored, key=lambda s: (-s.score, s.item_id))[:k]
        a = catalog[anchor]
        for rec in top:
            r = catalog[rec.item_id]
            rows.append(RecRow(
                user.user_id, user.trendiness, anchor, rec.item_id,
                category_similarity(a.category, r.category, a.group, r.group),
                a.category == r.category, gender_compatible(user.gender, r.gender),
                abs(normpop.get(rec.item_id, 0.0) - user.trendiness)))
    return rows
