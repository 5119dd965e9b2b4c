"""Repeat-aware recall, pair features, the final ranker and the diversity step."""

from __future__ import annotations

import asyncio
import math
import random

import numpy as np
import pytest
import redis
import torch

from models.next_event import (
    RankerConfig,
    RankingGroups,
    load_ranker,
    ndcg_at,
    save_ranker,
    train_ranker,
)
from scripts.embedded import EmbeddedServices
from serving.decay_scorer import history_reason
from serving.diversity import DiversityConfig, ItemFacts, diverse_top, duplicate_key, final_list
from serving.pair_features import FEATURES, pair_features
from serving.recall import RecallConfig, excluded_items, recall_candidates
from serving.scorer import ScoredItem, ShopperContext
from streams.config import ConfigError, DecaySettings, load_settings
from streams.contract import BehaviorEvent
from streams.decay import DecayedScores
from streams.store import ScoreStore

DAY = 86400.0
T0 = 1.6e9


def shopper(**kwargs) -> ShopperContext:
    base = dict(user_id="u", now=T0 + 3 * DAY,
                scores={"cart1": 5.0, "view1": 1.0, "bought": 10.0, "fav1": 3.0},
                behaviors={"cart1": "cart", "view1": "view", "bought": "purchase",
                           "fav1": "favorite"},
                last_touch={"cart1": T0 + DAY, "view1": T0, "bought": T0 + 2 * DAY,
                            "fav1": T0 + 2.5 * DAY},
                last_event_time=T0 + 2.5 * DAY)
    base.update(kwargs)
    return ShopperContext(**base)


def test_history_items_are_recalled_unless_their_behaviour_excludes_them() -> None:
    """Catches the discovery-only recall coming back (own items never shown), and a purchase
    leaking into the candidates: views, saves and carts are candidates of their own source."""
    s = shopper()
    config = RecallConfig()
    skip = excluded_items(s.behaviors, config)
    assert skip == {"bought"}
    cands = recall_candidates(s.scores, {"cart1": [("bought", 1.0), ("new", 1.0)]}, [],
                              exclude=skip, config=config)
    by_id = {c.item_id: c for c in cands}
    assert {"cart1", "view1", "fav1", "new"} <= set(by_id)
    assert "bought" not in by_id
    assert by_id["cart1"].sources["history"][0] == pytest.approx(5.0)
    assert "history" not in by_id["new"].sources
    # carts excluded too: the setting, not a constant, decides
    strict = RecallConfig(exclude_behaviors=frozenset({"purchase", "cart"}))
    cands = recall_candidates(s.scores, {}, [], exclude=excluded_items(s.behaviors, strict),
                              config=strict)
    assert "cart1" not in {c.item_id for c in cands}


def test_exclusion_setting_is_read_and_validated() -> None:
    """Catches STYLESTREAM_EXCLUDE_BEHAVIORS being ignored or accepting a typo silently."""
    assert load_settings({}).exclude_behaviors == frozenset({"purchase"})
    got = load_settings({"STYLESTREAM_EXCLUDE_BEHAVIORS": "purchase,cart"}).exclude_behaviors
    assert got == frozenset({"purchase", "cart"})
    with pytest.raises(ConfigError, match="STYLESTREAM_EXCLUDE_BEHAVIORS"):
        load_settings({"STYLESTREAM_EXCLUDE_BEHAVIORS": "purchse"})


def test_history_reasons_say_what_the_shopper_did_and_when() -> None:
    """Catches reasons that do not tell a repeat apart ("still in your cart", "you saved this
    yesterday")."""
    s = shopper()
    assert history_reason(s, "cart1") == "still in your cart"
    assert history_reason(s, "fav1") == "you saved this today"
    assert history_reason(s, "view1") == "you viewed this 3 days ago"


def test_pair_features_do_not_depend_on_the_read_clock() -> None:
    """Catches features that drift with the wall clock: reading the same state a year later
    (all scores scaled by exp(−λ·Δ)) or replaying an old log must give identical rows."""
    s = shopper()
    cands = recall_candidates(s.scores, {"cart1": [("new", 2.0)]}, [("pop", 7.0), ("new", 3.0)],
                              exclude={"bought"})
    popularity = {"pop": 7.0, "new": 3.0, "cart1": 1.0}
    rows = pair_features(s, cands, popularity, 7.0, [c.recall_score for c in cands])
    shift, factor = 365 * DAY, math.exp(-0.05 * 365)
    later = shopper(now=s.now + shift, scores={i: v * factor for i, v in s.scores.items()})
    later_cands = recall_candidates(later.scores, {"cart1": [("new", 2.0)]},
                                    [("pop", 7.0 * factor), ("new", 3.0 * factor)],
                                    exclude={"bought"})
    later_rows = pair_features(later, later_cands, {i: v * factor for i, v in popularity.items()},
                               7.0 * factor, [c.recall_score for c in later_cands])
    assert [c.item_id for c in cands] == [c.item_id for c in later_cands]
    np.testing.assert_allclose(rows, later_rows, rtol=1e-5, atol=1e-5)
    assert rows.shape == (len(cands), len(FEATURES))
    own = {c.item_id: r for c, r in zip(cands, rows, strict=True)}
    assert own["cart1"][FEATURES.index("in_history")] == 1.0
    assert own["cart1"][FEATURES.index("beh_cart")] == 1.0
    assert own["new"][FEATURES.index("in_history")] == 0.0
    # the cart was touched 1.5 days before the shopper's newest event
    assert own["cart1"][FEATURES.index("log_hours_since")] == pytest.approx(math.log1p(36.0))


def synthetic_groups(rng: np.random.Generator, n: int) -> RankingGroups:
    """Groups where the positive is the row with the largest (noisy) feature 3."""
    feats, labels, offsets = [], [], [0]
    for _ in range(n):
        x = rng.normal(size=(20, len(FEATURES))).astype(np.float32)
        y = np.zeros(20, np.float32)
        y[int(np.argmax(x[:, 3] + 0.3 * rng.normal(size=20)))] = 1.0
        feats.append(x)
        labels.append(y)
        offsets.append(offsets[-1] + 20)
    return RankingGroups(np.concatenate(feats), np.concatenate(labels), np.array(offsets))


@pytest.mark.parametrize("loss", ["listwise", "bpr"])
def test_ranker_learns_the_next_event_and_round_trips(tmp_path, loss: str) -> None:
    """Catches a ranker that does not learn from next-event labels (NDCG@5 stays near random,
    ~0.2 for one positive in 20) and a checkpoint that does not reload identically."""
    rng = np.random.default_rng(0)
    train, valid = synthetic_groups(rng, 300), synthetic_groups(rng, 100)
    model, info = train_ranker(train, valid, RankerConfig(len(FEATURES), epochs=15, loss=loss))
    assert ndcg_at(model.score(valid.features), valid) > 0.7
    path = save_ranker(tmp_path / "r.pt", model, version="t", feature_names=FEATURES)
    loaded = load_ranker(path)
    np.testing.assert_allclose(loaded.model.score(valid.features), model.score(valid.features))
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a"):
        load_ranker(tmp_path / "bad.pt")


def test_diversity_never_shows_near_duplicates_and_caps_categories() -> None:
    """Catches a Top-5 with the same product twice (the "three Women Black Striped Shirt"
    list), with visually identical items, or with more than the cap of one category."""
    shirt = duplicate_key("Women Black  Striped Shirt", "Black")
    v = np.array([1.0, 0.0], dtype=np.float32)
    facts = {
        "a": ItemFacts(shirt, "Shirts", v), "b": ItemFacts(duplicate_key("women black striped "
                                                                         "shirt", "black"),
                                                       "Shirts", None),
        "c": ItemFacts(None, "Shirts", np.array([0.999, 0.04], np.float32) / 1.0008),
        "d": ItemFacts(None, "Shirts", np.array([0.0, 1.0], np.float32)),
        "e": ItemFacts(None, "Shirts", None), "f": ItemFacts(None, "Jeans", None),
    }
    ranked = [ScoredItem(i, 10.0 - k) for k, i in enumerate("abcdefg")]
    got = [s.item_id for s in diverse_top(ranked, 5, facts, DiversityConfig(max_per_category=2))]
    assert got[:3] == ["a", "d", "f"]
    assert "b" not in got and "c" not in got     # title+colour duplicate, visual duplicate
    assert got == ["a", "d", "f", "g", "e"]      # "e" only fills: the cap held it back
    no_fill = diverse_top(ranked, 5, facts, DiversityConfig(max_per_category=2, fill=False))
    assert [s.item_id for s in no_fill] == ["a", "d", "f", "g"]
    final = final_list(ranked, {"a"}, 5, facts)
    assert "a" not in [s.item_id for s in final]


def test_store_keeps_the_last_touch_per_item_like_the_reference(
        module_services: EmbeddedServices) -> None:
    """Catches the Lua and the Python twin disagreeing on the per-item last touch and the
    strongest behaviour the ranker reads (out-of-order events, caps dropping items)."""
    redis.Redis.from_url(module_services.redis_url).flushdb()
    decay = DecaySettings(max_items_per_user=8)
    rng = random.Random(3)
    events = [BehaviorEvent(f"e{k}", f"u{rng.randrange(3)}", f"i{rng.randrange(12)}",
                            rng.choice(["view", "favorite", "cart", "purchase"]),
                            T0 + rng.uniform(0, 5 * DAY)) for k in range(300)]
    reference = DecayedScores(decay.weights, decay.decay_per_day, decay.rebase_bound, 8)
    for e in events:
        reference.apply(e.event_id, e.user_id, e.item_id, e.behavior, e.timestamp)

    async def run() -> list[dict]:
        store = ScoreStore.from_url(module_services.redis_url, decay)
        try:
            for k in range(0, len(events), 37):
                await store.apply_batch(events[k:k + 37])
            return await store.user_profiles(sorted(reference.users), T0 + 6 * DAY)
        finally:
            await store.close()

    profiles = asyncio.run(run())
    for user, profile in zip(sorted(reference.users), profiles, strict=True):
        state = reference.users[user]
        assert profile["last_touch"] == pytest.approx(state.last)
        assert profile["behaviors"] == state.best
        assert set(profile["last_touch"]) == set(state.acc)
