"""The rerank hot path after its speed-ups publishes what the plain definitions say.

- :func:`serving.pair_features.pair_features` (built column by column) against each column's
  definition computed one candidate at a time, bit for bit;
- :class:`serving.next_event_scorer.NextEventScorer` scoring a whole micro-batch in one forward
  pass against the same shoppers scored one at a time, and its reasons (written when first
  read) against the eager rule;
- :class:`serving.decay_scorer.DecayCovisScorer`'s lazily written reasons against
  :func:`serving.decay_scorer.recall_reasons`.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.next_event import Calibration, NextEventRanker, RankerConfig, save_ranker
from serving.decay_scorer import DecayCovisScorer, recall_reasons
from serving.next_event_scorer import NextEventScorer
from serving.pair_features import FEATURES, pair_features, trendiness
from serving.scorer import (
    Candidate,
    PopularitySnapshot,
    RerankRequest,
    ScoredItem,
    ShopperContext,
)

torch.set_num_threads(1)

ITEMS = [f"i{k}" for k in range(30)]
SOURCES = ("history", "covisit", "content", "trending")


def reference_row(shopper: ShopperContext, cand: Candidate, position: int,
                  popularity: dict[str, float], top_pop: float) -> list[float]:
    """One candidate's columns, straight from the table in ``serving.pair_features``."""
    scores = shopper.scores
    top_user = max(scores.values(), default=0.0)
    scale = top_user if top_user > 0 else 1.0
    top_pop = top_pop if top_pop > 0 else 1.0
    newest = shopper.last_event_time
    if newest is None:
        newest = max(shopper.last_touch.values(), default=0.0)
    own = scores.get(cand.item_id, 0.0)
    row = dict.fromkeys(FEATURES, 0.0)
    if own > 0:
        row["in_history"] = 1.0
        row["log_rel_score"] = math.log(own) - (math.log(top_user) if top_user > 0 else 0.0)
        behaviour = shopper.behaviors.get(cand.item_id, "view")
        if behaviour in ("view", "favorite", "cart"):
            row[f"beh_{behaviour}"] = 1.0
        touched = shopper.last_touch.get(cand.item_id)
        row["log_hours_since"] = math.log1p(
            max(0.0, (newest - touched) / 3600.0) if touched is not None else 7 * 24.0)
    else:
        row["log_rel_score"] = -20.0
        row["log_hours_since"] = math.log1p(7 * 24.0)
    if "covisit" in cand.sources:
        row["log_covisit"] = math.log1p(cand.sources["covisit"][0] / scale)
    if "content" in cand.sources:
        row["log_content"] = math.log1p(cand.sources["content"][0] / scale)
    norm_pop = min(1.0, popularity.get(cand.item_id, 0.0) / top_pop)
    row["norm_pop"] = norm_pop
    row["log_norm_pop"] = math.log(norm_pop + 1e-6)
    row["trend_fit"] = 1.0 - (trendiness(scores, popularity, top_pop) - norm_pop) ** 2
    row["is_trending"] = 1.0 if "trending" in cand.sources else 0.0
    row["log_history_size"] = math.log1p(len(scores))
    row["log_recall_rank"] = math.log1p(position)
    by_score = sorted(scores, key=lambda i: (-scores[i], i))
    by_recency = sorted(scores, key=lambda i: (-shopper.last_touch.get(i, 0.0), i))
    unranked = math.log1p(len(scores) + 1)
    row["log_own_rank"] = (math.log1p(by_score.index(cand.item_id))
                           if cand.item_id in scores else unranked)
    row["log_recency_rank"] = (math.log1p(by_recency.index(cand.item_id))
                               if cand.item_id in scores else unranked)
    return [row[name] for name in FEATURES]


@st.composite
def shoppers_and_candidates(draw):
    values = st.sampled_from([0.001, 0.3, 1.0, 1.0, 2.5, 17.0])
    own = draw(st.lists(st.sampled_from(ITEMS), max_size=12, unique=True))
    scores = {i: draw(values) for i in own}
    touches = {i: draw(st.sampled_from([0.0, 3600.0, 86_400.0, 90_000.0])) for i in own
               if draw(st.booleans())}
    shopper = ShopperContext(
        "u", 100_000.0, scores,
        behaviors={i: draw(st.sampled_from(["view", "favorite", "cart", "purchase", "odd"]))
                   for i in own if draw(st.booleans())},
        last_touch=touches,
        last_event_time=draw(st.sampled_from([None, 95_000.0])))
    cands = []
    for item in draw(st.lists(st.sampled_from(ITEMS), max_size=25, unique=True)):
        sources = {s: (draw(values), None) for s in draw(st.sets(st.sampled_from(SOURCES)))}
        cands.append(Candidate(item, draw(values), sources))
    popularity = {i: draw(values) for i in draw(st.sets(st.sampled_from(ITEMS)))}
    top_pop = draw(st.sampled_from([0.0, 5.0, max(popularity.values(), default=0.0)]))
    return shopper, cands, popularity, top_pop


@settings(max_examples=300, deadline=None)
@given(shoppers_and_candidates())
def test_pair_features_match_their_definitions_bit_for_bit(case) -> None:
    """Catches a column-wise build that changes any value (another log, a different rounding
    path to float32), mixes up columns or rows, or ranks the shopper's own items in another
    order (ties by item id)."""
    shopper, cands, popularity, top_pop = case
    base = [float(k % 3) for k in range(len(cands))]
    got = pair_features(shopper, cands, popularity, top_pop, base)
    want = np.array([reference_row(shopper, c, k, popularity, top_pop)
                     for k, c in enumerate(cands)], dtype=np.float32).reshape(-1, len(FEATURES))
    b = np.asarray(base, dtype=np.float64)
    want[:, FEATURES.index("base_score")] = ((b - b.mean()) / b.std() if len(b) and b.std() > 0
                                             else 0.0)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def random_batch(seed: int, n: int) -> RerankRequest:
    rng = random.Random(seed)
    shoppers, candidates = [], []
    for u in range(n):
        own = rng.sample(ITEMS, rng.randrange(0, 10))
        shoppers.append(ShopperContext(
            f"u{u}", 50_000.0, {i: rng.uniform(0.1, 5) for i in own},
            behaviors={i: rng.choice(["view", "cart", "favorite"]) for i in own},
            last_touch={i: rng.uniform(0, 40_000) for i in own}, last_event_time=40_000.0))
        cands = [Candidate(i, rng.uniform(0, 3), {"history": (1.0, i)} if i in own else
                           {rng.choice(["covisit", "content", "trending"]):
                            (rng.uniform(0, 2), rng.choice(own) if own else None)})
                 for i in rng.sample(ITEMS, 0 if u % 7 == 3 else rng.randrange(1, 25))]
        candidates.append(cands)
    popularity = PopularitySnapshot({i: rng.uniform(0, 9) for i in ITEMS})
    return RerankRequest(shoppers, candidates, 50_000.0, popularity)


@pytest.fixture(scope="module")
def ranker_path(tmp_path_factory):
    torch.manual_seed(3)
    model = NextEventRanker(RankerConfig(len(FEATURES)))
    return save_ranker(tmp_path_factory.mktemp("ranker") / "r.pt", model, version="t",
                       feature_names=FEATURES,
                       calibration=Calibration([1.0, 0.2, 1.2, 0.1, 0.1, -0.1, 0.0], -2.0))


def test_one_forward_pass_per_batch_scores_like_one_shopper_at_a_time(ranker_path) -> None:
    """Catches rows of one shopper scored or calibrated as another's (an offset slip when the
    micro-batch's rows are stacked), shoppers without candidates shifting the others,
    candidates dropped, or scores whose last bits depend on the other shoppers of the batch
    (a forward pass whose shape follows the batch)."""
    titles = {i: f"Title {i}" for i in ITEMS}
    scorer = NextEventScorer(ranker_path, DecayCovisScorer(titles, reasons_top=3), titles)
    request = random_batch(7, 40)
    assert any(not c for c in request.candidates)     # some shoppers have nothing recalled
    together = scorer.score(request)
    for k, (shopper, cands) in enumerate(zip(request.shoppers, request.candidates,
                                             strict=True)):
        alone = scorer.score(RerankRequest([shopper], [cands], request.now,
                                           request.popularity))[0]
        assert [s.item_id for s in together[k]] == [s.item_id for s in alone]
        # bit for bit: a score must not depend on who shares the micro-batch (near-ties would
        # reorder from one run of the live system to the next)
        assert [s.score for s in together[k]] == [s.score for s in alone]
        assert [s.reasons for s in together[k]] == [s.reasons for s in alone]


def test_fixed_shape_passes_score_a_row_the_same_wherever_it_lands() -> None:
    """Catches ranker passes whose shape follows the micro-batch: the same rows at another
    offset, after other shoppers' rows, must score bit for bit the same."""
    from serving.next_event_scorer import score_rows

    torch.manual_seed(5)
    model = NextEventRanker(RankerConfig(len(FEATURES)))
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((300, len(FEATURES))).astype(np.float32)
    torch.set_num_threads(2)
    try:
        alone = score_rows(model, rows)
        for before, after in ((1, 0), (255, 3), (700, 900), (2048, 1)):
            other = rng.standard_normal((before, len(FEATURES))).astype(np.float32)
            tail = rng.standard_normal((after, len(FEATURES))).astype(np.float32)
            got = score_rows(model, np.concatenate([other, rows, tail]))[before: before + 300]
            np.testing.assert_array_equal(got, alone)
        assert torch.get_num_threads() == 2   # the caller's setting, restored after the passes
    finally:
        torch.set_num_threads(1)
    assert score_rows(model, rows[:0]).shape == (0,)


def test_reasons_written_on_first_read_are_the_eager_rule(ranker_path) -> None:
    """Catches lazily written reasons that differ from the rule they defer: the chain's
    reasons, or the recall's for the shopper's own items and for items the chain gave none;
    and the base scorer writing reasons past its ``reasons_top``."""
    titles = {i: f"Title {i}" for i in ITEMS}
    base = DecayCovisScorer(titles, reasons_top=3)
    request = random_batch(11, 25)
    below = base.score(request)
    for shopper, cands, scored in zip(request.shoppers, request.candidates, below,
                                      strict=True):
        ranked = sorted(cands, key=lambda c: c.recall_score, reverse=True)
        assert [s.reasons for s in scored] == [
            recall_reasons(shopper, c, titles) if k < 3 else [] for k, c in enumerate(ranked)]
    final = NextEventScorer(ranker_path, base, titles).score(request)
    for shopper, cands, scored in zip(request.shoppers, request.candidates, final,
                                      strict=True):
        by_item = {c.item_id: c for c in cands}
        for item in scored:
            cand = by_item[item.item_id]
            assert item.reasons == recall_reasons(shopper, cand, titles)
            assert item == ScoredItem(item.item_id, item.score, recall_reasons(shopper, cand,
                                                                               titles))


def test_the_collector_is_paused_while_a_batch_is_scored_and_restored_after() -> None:
    """Catches the pause leaking out of a micro-batch (the collector left off for good, so
    reference cycles would pile up) or re-enabling a collector that was off before."""
    import gc

    from serving.chain import ScorerChain

    seen = []

    class Probe(DecayCovisScorer):
        def score(self, request):
            seen.append(gc.isenabled())
            return super().score(request)

    chain = ScorerChain.of(Probe())
    request = random_batch(1, 3)
    assert gc.isenabled()
    chain.score(request)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        chain.score(request)
        assert not gc.isenabled()
    finally:
        gc.enable()
