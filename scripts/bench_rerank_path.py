"""The rerank path as a worker serves it, per stage, on a generated micro-batch (no services).

One micro-batch of ``shoppers`` shoppers (each with ``own`` items of their own: decayed scores,
strongest behaviours — some purchases —, last touches), co-visitation neighbours for every item,
a trending list, optional content neighbours, and catalog facts for every item (title + colour
with deliberate near-duplicates, a category out of ``categories``, a unit visual vector). Then
the stages the worker runs between its Redis reads and its publishing, timed separately:

- ``recall``: :func:`serving.recall.seed_items` + :func:`serving.recall.recall_batch` (history,
  co-visitation, content and trending sources);
- ``base chain``: the decayed-score/co-visitation scorer (reasons included);
- ``final ranker``: :class:`serving.next_event_scorer.NextEventScorer` on top of it (pair
  features, the ranker MLP, calibration, reasons), minus the base chain's time;
- ``final list``: :func:`serving.diversity.final_list` per shopper (exclusions, order,
  near-duplicate/category caps and, with the calibrated ranker, the explore composition).

Beside them, in the same run, the baselines of the two changes that could be timed in one tree:
the ranker's MLP called once per shopper (before) against the micro-batch's stacked rows in
fixed-shape passes (served), on the same rows, and the final list's constraints over every
candidate sorted (before) against the lazy :func:`~serving.diversity.final_list`.

Only public functions of ``serving`` are called, so the same harness times any tree of the
project (put that tree first on ``PYTHONPATH``): the before/after comparison of BENCHMARKS.md.
:func:`profile_path` runs the same loop under cProfile.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PathSizes:
    shoppers: int = 256
    own: int = 50            # items per shopper read from Redis (the store's default n)
    items: int = 20_000
    categories: int = 40
    covisit: int = 20
    trending: int = 30
    content: bool = True
    seed: int = 0


def make_batch(sizes: PathSizes):
    """(shoppers, covisits, trending, content, item facts) of one generated micro-batch."""
    import numpy as np

    from serving.diversity import ItemFacts, duplicate_key
    from serving.scorer import ShopperContext

    rng = random.Random(sizes.seed)
    nrng = np.random.default_rng(sizes.seed)
    ids = [f"i{k}" for k in range(sizes.items)]
    weights = [1.0 / (k + 1) ** 0.8 for k in range(sizes.items)]   # Zipf-like popularity
    vectors = nrng.standard_normal((sizes.items, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    facts = {}
    for k, item in enumerate(ids):
        # every 7th item shares its title and colour with the one before: near-duplicates
        title = f"Shirt {k - 1 if k % 7 == 0 and k else k}"
        facts[item] = ItemFacts(duplicate_key(title, "Black"),
                                f"cat{rng.randrange(sizes.categories)}", vectors[k])
    now = 1_000_000.0
    behaviours = ("view", "view", "view", "favorite", "cart", "purchase")
    shoppers = []
    for u in range(sizes.shoppers):
        own = list(dict.fromkeys(rng.choices(ids, weights, k=sizes.own)))
        scores = {i: rng.expovariate(1.0) * 5 for i in own}
        scores = dict(sorted(scores.items(), key=lambda kv: -kv[1]))   # as read: strongest first
        touch = {i: now - rng.uniform(0, 30 * 86400) for i in own}
        shoppers.append(ShopperContext(
            user_id=f"u{u}", now=now, scores=scores,
            behaviors={i: rng.choice(behaviours) for i in own},
            purchased=set(), last_touch=touch, last_event_time=max(touch.values())))
    for s in shoppers:
        s.purchased = {i for i, b in s.behaviors.items() if b == "purchase"}
    seeds = sorted({i for s in shoppers for i in s.scores})   # the same batch in any process
    covisits = {i: sorted(((j, rng.expovariate(1.0) * 10) for j in
                           rng.choices(ids, weights, k=sizes.covisit)), key=lambda kv: -kv[1])
                for i in seeds}
    content = ({i: [(j, rng.uniform(0.3, 0.95)) for j in rng.sample(ids, sizes.covisit)]
                for i in seeds} if sizes.content else None)
    trending = [(ids[k], 1000.0 / (k + 1)) for k in range(sizes.trending)]
    return shoppers, covisits, trending, content, facts


def make_ranker(directory: Path) -> Path:
    """A final-ranker checkpoint with seeded weights and a calibration (the served shape:
    scores become chances of a hit, so the explore composition runs)."""
    import torch

    from models.next_event import Calibration, NextEventRanker, RankerConfig, save_ranker
    from serving.pair_features import FEATURES

    torch.manual_seed(0)
    model = NextEventRanker(RankerConfig(len(FEATURES)))
    calibration = Calibration([1.0, 0.3, 1.5, 0.2, 0.1, -0.1, 0.05], -3.0)
    return save_ranker(directory / "ranker.pt", model, version="bench",
                       feature_names=FEATURES, calibration=calibration)


def _path(sizes: PathSizes, directory: Path):
    """The stage functions over one generated batch, and the published lists they make."""
    import numpy as np

    from serving.chain import ScorerChain
    from serving.decay_scorer import DecayCovisScorer
    from serving.diversity import DiversityConfig, diverse_top, final_list
    from serving.next_event_scorer import NextEventScorer, kept_by_chain
    from serving.pair_features import pair_features
    from serving.recall import RecallConfig, popularity_items, recall_batch, seed_items
    from serving.scorer import PopularitySnapshot, RerankRequest

    shoppers, covisits, trending, content, facts = make_batch(sizes)
    base = DecayCovisScorer({i: f"Shirt {i}" for i in facts}, reasons_top=20)
    chain = ScorerChain((base, NextEventScorer(make_ranker(directory), base)))
    config, diversity = RecallConfig(), DiversityConfig()
    state: dict = {"shoppers": shoppers}

    def recall():
        seeds = seed_items(shoppers, config)
        found = {i: covisits.get(i, []) for i in seeds}
        near = {i: content[i] for i in seeds} if content else None
        state["candidates"], state["excluded"] = recall_batch(shoppers, found, trending, near,
                                                              config)
        items = popularity_items(shoppers, state["candidates"])
        state["popularity"] = PopularitySnapshot.of(
            {i: 1000.0 / (1 + int(i[1:])) for i in items}, trending)

    def request():
        return RerankRequest(shoppers, state["candidates"], shoppers[0].now, state["popularity"])

    def base_chain():
        state["base"] = base.score(request())

    def full_chain():
        state["scored"] = chain.score(request())

    def lists():
        calibrated = chain.calibrated
        state["lists"] = [final_list(items, skip, 5, facts, diversity, set(s.scores), calibrated)
                          for s, skip, items in zip(shoppers, state["excluded"], state["scored"],
                                                    strict=True)]

    # baselines in the same run: the ranker's MLP called once per shopper (as before) and on
    # the micro-batch's stacked rows (as served), on the same pair-feature rows; the final
    # list's constraints over every candidate fully sorted (as before) — compare "final list"
    ranker = chain.top.model

    def feature_rows():
        top_pop = max(state["popularity"].values.values(), default=0.0)
        rows = []
        for s, cands, items in zip(shoppers, state["candidates"], state["base"], strict=True):
            cands, by_item = kept_by_chain(cands, items)
            rows.append(pair_features(s, cands, state["popularity"].values, top_pop,
                                      [by_item[c.item_id].score for c in cands]))
        state["rows"] = [r for r in rows if len(r)]

    def forward_per_shopper():
        for rows in state["rows"]:
            ranker.score(rows)

    try:   # the served way (fixed-shape passes on one thread); absent from older trees
        from serving.next_event_scorer import score_rows
    except ImportError:
        score_rows = None

    def forward_per_batch():
        if score_rows is not None:
            score_rows(ranker, np.concatenate(state["rows"]))

    def sort_all_then_caps():
        explore = diversity.explore_weight if chain.calibrated else None
        for s, skip, items in zip(shoppers, state["excluded"], state["scored"], strict=True):
            ranked = sorted((i for i in items if i.item_id not in skip),
                            key=lambda i: (-i.score, i.item_id))
            diverse_top(ranked, 5, facts, diversity, set(s.scores), explore)

    return {"recall": recall, "base chain": base_chain, "chain": full_chain,
            "final list": lists, "pair features": feature_rows,
            "forward per shopper": forward_per_shopper, "forward per batch": forward_per_batch,
            "sort all then caps": sort_all_then_caps}, state


@contextmanager
def served_heap() -> Iterator[None]:
    """The collector as ``stylestream rerank`` runs it (:func:`streams.runtime.settle_heap`:
    the start-up heap frozen, a higher gen-0 threshold), restored afterwards."""
    from streams.runtime import settle_heap

    threshold = gc.get_threshold()
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def time_path(sizes: PathSizes = PathSizes(), seconds: float = 2.0) -> dict:
    """CPU µs per list of each stage (this process's CPU time — all threads — over repeated
    micro-batches for about ``seconds`` of wall time per stage: steadier than wall time on a
    shared box), with the worker's collector settings (:func:`served_heap`); the lists (item ids
    and scores) for a cross-tree check, and the candidate count."""
    with tempfile.TemporaryDirectory() as tmp:
        stages, state = _path(sizes, Path(tmp))
        for fn in stages.values():   # warm-up, and every stage's inputs in place
            fn()
        per_batch = {}
        with served_heap():
            for name, fn in stages.items():
                calls, began, cpu = 0, time.perf_counter(), time.process_time()
                while calls < 3 or time.perf_counter() - began < seconds:
                    fn()
                    calls += 1
                per_batch[name] = (time.process_time() - cpu) / calls
    us = {name: value * 1e6 / sizes.shoppers for name, value in per_batch.items()}
    rows = [{"stage": "recall", "us_per_list": us["recall"]},
            {"stage": "base chain (decay/co-visitation scorer)", "us_per_list": us["base chain"]},
            {"stage": "final ranker (pair features, MLP, calibration)",
             "us_per_list": us["chain"] - us["base chain"]},
            {"stage": "final list (diversity, explore)", "us_per_list": us["final list"]}]
    total = us["recall"] + us["chain"] + us["final list"]
    rows.append({"stage": "total", "us_per_list": total})
    rows += [{"stage": "pair features alone (part of the final ranker)",
              "us_per_list": us["pair features"]},
             {"stage": "baseline: ranker MLP, one call per shopper",
              "us_per_list": us["forward per shopper"]},
             {"stage": "ranker MLP as served: the batch's rows in fixed 256-row passes",
              "us_per_list": us["forward per batch"]},
             {"stage": "baseline: final list over every candidate sorted",
              "us_per_list": us["sort all then caps"]}]
    lists = {s.user_id: [(i.item_id, round(i.score, 9)) for i in published]
             for s, published in zip(state["shoppers"], state["lists"], strict=True)}
    candidates = sum(map(len, state["candidates"])) / sizes.shoppers
    return {"rows": rows, "lists": lists, "candidates_per_list": candidates,
            "shoppers": sizes.shoppers}


def profile_path(sizes: PathSizes = PathSizes(), batches: int = 20, top: int = 25) -> str:
    """cProfile of ``batches`` micro-batches through every stage: the top functions by own
    time (``tottime``), as text."""
    with tempfile.TemporaryDirectory() as tmp:
        stages, _ = _path(sizes, Path(tmp))
        order = [stages["recall"], stages["chain"], stages["final list"]]
        for fn in order:
            fn()
        profiler = cProfile.Profile()
        with served_heap():
            profiler.enable()
            for _ in range(batches):
                for fn in order:
                    fn()
            profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def markdown(result: dict) -> str:
    lines = [f"Served rerank path, {result['shoppers']} shoppers per micro-batch, "
             f"{result['candidates_per_list']:.0f} candidates per shopper (no services)", "",
             "| stage | CPU µs / list |", "|---|---:|"]
    lines += [f"| {r['stage']} | {r['us_per_list']:.1f} |" for r in result["rows"]]
    return "\n".join(lines)
