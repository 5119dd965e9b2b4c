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

Only public functions of ``serving`` are called, so the same harness times any tree of the
project (put that tree first on ``PYTHONPATH``): the before/after comparison of BENCHMARKS.md.
:func:`profile_path` runs the same loop under cProfile.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import tempfile
import time
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
    seeds = {i for s in shoppers for i in s.scores}
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
    from serving.chain import ScorerChain
    from serving.decay_scorer import DecayCovisScorer
    from serving.diversity import DiversityConfig, final_list
    from serving.next_event_scorer import NextEventScorer
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

    return {"recall": recall, "base chain": base_chain, "chain": full_chain,
            "final list": lists}, state


def time_path(sizes: PathSizes = PathSizes(), seconds: float = 2.0) -> dict:
    """µs per list of each stage (mean over repeated micro-batches for about ``seconds`` per
    stage), the lists (item ids and scores) for a cross-tree check, and the candidate count."""
    with tempfile.TemporaryDirectory() as tmp:
        stages, state = _path(sizes, Path(tmp))
        for fn in stages.values():   # warm-up, and every stage's inputs in place
            fn()
        per_batch = {}
        for name, fn in stages.items():
            calls, began = 0, time.perf_counter()
            while calls < 3 or time.perf_counter() - began < seconds:
                fn()
                calls += 1
            per_batch[name] = (time.perf_counter() - began) / calls
    us = {name: value * 1e6 / sizes.shoppers for name, value in per_batch.items()}
    rows = [{"stage": "recall", "us_per_list": us["recall"]},
            {"stage": "base chain (decay/co-visitation scorer)", "us_per_list": us["base chain"]},
            {"stage": "final ranker (pair features, MLP, calibration)",
             "us_per_list": us["chain"] - us["base chain"]},
            {"stage": "final list (diversity, explore)", "us_per_list": us["final list"]}]
    total = us["recall"] + us["chain"] + us["final list"]
    rows.append({"stage": "total", "us_per_list": total})
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
             "| stage | µs / list |", "|---|---:|"]
    lines += [f"| {r['stage']} | {r['us_per_list']:.1f} |" for r in result["rows"]]
    return "\n".join(lines)
