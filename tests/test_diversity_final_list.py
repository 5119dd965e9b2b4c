"""The published Top-5 (:func:`serving.diversity.final_list`) against the rule written out
plainly: every candidate set hypothesis draws gives the same list, item for item.

``final_list`` takes candidates lazily off a heap (only as many as the caps need); the reference
below re-derives each step from scratch — the best remaining candidate by a linear scan, every
constraint re-checked against the items taken so far — so a heap that orders ties differently,
stops too early, loses an item held back by a cap, or mixes up the own/new queues of the
explore composition shows up as a different list.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.diversity import DiversityConfig, ItemFacts, diverse_top, final_list
from serving.scorer import ScoredItem

VECTORS = [np.array(v, dtype=np.float32) / np.linalg.norm(v)
           for v in ([1.0, 0.0], [0.0, 1.0], [1.0, 0.02], [0.6, 0.8], [-1.0, 0.0])]


def order_key(item: ScoredItem, position: int) -> tuple:
    """Best first: higher score, then smaller item id, then earlier in the input."""
    return (-item.score, item.item_id, position)


def chance(item: ScoredItem) -> float:
    return min(1.0, max(0.0, float(item.score)))


def verdict(item: ScoredItem, taken: list[ScoredItem], facts, config: DiversityConfig,
            repeats) -> str:
    """"take", "hold" (a cap: it may fill the list later) or "drop" (a near-duplicate),
    checked against every item taken so far."""
    own = item.item_id in repeats
    if own and config.max_repeats is not None and \
            sum(t.item_id in repeats for t in taken) >= config.max_repeats:
        return "hold"
    fact = facts.get(item.item_id)
    if fact is None:
        return "take"
    taken_facts = [facts[t.item_id] for t in taken if t.item_id in facts]
    if fact.duplicate_key is not None and any(f.duplicate_key == fact.duplicate_key
                                              for f in taken_facts):
        return "drop"
    if fact.vector is not None and any(
            f.vector is not None and float(fact.vector @ f.vector) > config.visual_threshold
            for f in taken_facts):
        return "drop"
    if fact.category is not None and sum(f.category == fact.category for f in taken_facts) \
            >= config.max_per_category:
        return "hold"
    return "take"


def reference(scored: list[ScoredItem], excluded: set[str], k: int, facts,
              config: DiversityConfig, repeats: set[str], calibrated: bool) -> list[str]:
    pool = [(order_key(s, p), s) for p, s in enumerate(scored) if s.item_id not in excluded]
    explore = config.explore_weight if calibrated else None
    taken: list[ScoredItem] = []
    held: list[ScoredItem] = []
    miss_all = miss_new = 1.0
    while len(taken) < k and pool:
        if explore is None:
            pick = min(pool, key=lambda e: e[0])
            from_new = False
        else:   # the best remaining own and new item; the larger marginal gain enters
            own = [e for e in pool if e[1].item_id in repeats]
            new = [e for e in pool if e[1].item_id not in repeats]
            best_own = min(own, key=lambda e: e[0]) if own else None
            best_new = min(new, key=lambda e: e[0]) if new else None
            gain_own = chance(best_own[1]) * miss_all if best_own else -1.0
            gain_new = (chance(best_new[1]) * (miss_all + explore * miss_new)
                        if best_new else -1.0)
            from_new = gain_new > gain_own
            pick = best_new if from_new else best_own
        pool.remove(pick)
        item = pick[1]
        outcome = verdict(item, taken, facts, config, repeats)
        if outcome == "hold":
            held.append(item)
        if outcome != "take":
            continue
        taken.append(item)
        if explore is not None:
            miss_all *= 1.0 - chance(item)
            if from_new:
                miss_new *= 1.0 - chance(item)
    if explore is not None:   # each block of 5 shown best chance first (stable)
        taken = [t for start in range(0, len(taken), 5)
                 for t in sorted(taken[start:start + 5], key=lambda s: -chance(s))]
    if config.fill and len(taken) < k:
        taken += held[: k - len(taken)]
    return [t.item_id for t in taken]


ITEMS = [f"i{k:02d}" for k in range(40)]


@st.composite
def cases(draw):
    ids = draw(st.lists(st.sampled_from(ITEMS), min_size=0, max_size=30, unique=True))
    # few distinct scores: many ties, the order among them is by item id
    values = st.sampled_from([-0.5, 0.0, 0.01, 0.05, 0.1, 0.1, 0.3, 0.5, 0.9, 1.0, 1.7, 4.0])
    scored = [ScoredItem(i, draw(values)) for i in ids]
    facts = {}
    for i in ids:
        if draw(st.booleans()):
            facts[i] = ItemFacts(draw(st.sampled_from([None, "a|x", "b|x", "c|y"])),
                                 draw(st.sampled_from([None, "shirts", "jeans", "shoes"])),
                                 draw(st.sampled_from([None, *VECTORS])))
    excluded = set(draw(st.lists(st.sampled_from(ids), max_size=5))) if ids else set()
    repeats = set(draw(st.lists(st.sampled_from(ids), max_size=12))) if ids else set()
    config = DiversityConfig(
        max_per_category=draw(st.integers(1, 3)),
        visual_threshold=draw(st.sampled_from([0.9, 0.97, 0.999])),
        fill=draw(st.booleans()),
        max_repeats=draw(st.sampled_from([None, 0, 1, 2, 4])),
        explore_weight=draw(st.sampled_from([None, 0.0, 0.25, 3.0])))
    return scored, excluded, draw(st.integers(1, 7)), facts, config, repeats, draw(st.booleans())


@settings(max_examples=600, deadline=None)
@given(cases())
def test_final_list_is_the_rule_written_out(case) -> None:
    """Catches a lazy Top-5 that differs from the rule anywhere: tie order (score, then item
    id), stopping before the caps are satisfied, an item held by the category or repeat cap
    missing from the fill, a near-duplicate let through, or the explore composition reading
    its own/new queues in another order."""
    scored, excluded, k, facts, config, repeats, calibrated = case
    got = [s.item_id for s in final_list(scored, excluded, k, facts, config, repeats,
                                         calibrated)]
    assert got == reference(scored, excluded, k, facts, config, repeats, calibrated)
    # and the same as the constraints applied over the fully sorted candidates
    ranked = sorted((s for s in scored if s.item_id not in excluded),
                    key=lambda s: (-s.score, s.item_id))
    explore = config.explore_weight if calibrated else None
    assert got == [s.item_id for s in diverse_top(ranked, k, facts, config, repeats, explore)]


def test_final_list_returns_the_scored_objects_themselves() -> None:
    """Catches a lazy path that rebuilds items (losing their reasons) or returns fewer than
    ``k`` when enough candidates pass."""
    scored = [ScoredItem(f"x{k}", 1.0 / (k + 1), [f"r{k}"]) for k in range(50)]
    got = final_list(scored, {"x0"}, 5, {})
    assert [s.item_id for s in got] == ["x1", "x2", "x3", "x4", "x5"]
    assert all(g is scored[int(g.item_id[1:])] for g in got)
