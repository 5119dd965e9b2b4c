"""The per-shopper repeat/explore decision: calibrated chances of a hit, the greedy
composition of the Top-5, its setting, and the ILD@5 dissimilarities of the replay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.list_diversity import (
    category_dissimilarity,
    covisit_dissimilarity,
    intra_list_diversity,
)
from models.datasets import Interaction
from models.next_event import (
    RankerConfig,
    RankingGroups,
    fit_calibration,
    load_ranker,
    save_ranker,
    train_ranker,
)
from serving.chain import ScorerChain
from serving.decay_scorer import DecayCovisScorer
from serving.diversity import DiversityConfig, ItemFacts, duplicate_key, final_list
from serving.explore import explore_compose
from serving.next_event_scorer import NextEventScorer
from serving.pair_features import FEATURES, IN_HISTORY, LOG_HISTORY_SIZE
from serving.scorer import (
    Candidate,
    PopularitySnapshot,
    RerankRequest,
    ScoredItem,
    ShopperContext,
)
from streams.config import ConfigError, Settings, load_settings


def items(prefix: str, chances: list[float]) -> list[ScoredItem]:
    return [ScoredItem(f"{prefix}{k}", p) for k, p in enumerate(chances)]


def compose(own: list[ScoredItem], new: list[ScoredItem], weight: float,
            k: int = 5) -> list[str]:
    ranked = sorted(own + new, key=lambda s: (-s.score, s.item_id))
    picked = explore_compose(ranked, {s.item_id for s in own}, k, weight, lambda _: True)
    return [s.item_id for s in picked]


def test_a_strongly_repeating_shopper_keeps_repeats() -> None:
    """Catches an explore rule that pushes new items into every list: a shopper whose own
    items are each likely to come back (long, strongly repeating history) keeps all five."""
    own = items("own", [0.5, 0.45, 0.4, 0.35, 0.3, 0.25])
    new = items("new", [0.02] * 10)
    assert compose(own, new, weight=1.0) == ["own0", "own1", "own2", "own3", "own4"]


def test_a_shopper_with_one_weak_own_item_gets_new_items() -> None:
    """Catches a rule that ignores the explore weight (the plain order puts the weak own
    items first) or that never lets a repeat in once exploring started."""
    own = items("own", [0.15, 0.10])
    new = items("new", [0.08, 0.07, 0.06, 0.05, 0.04])
    assert compose(own, new, weight=0.0) == ["own0", "own1", "new0", "new1", "new2"]
    explored = compose(own, new, weight=1.0)
    # greedy: new0 first ((1 + w) · 0.08 > 0.15), then own0, then new items beat own1; shown
    # best chance first (the order inside a Top-5 changes no expectation, only NDCG)
    assert explored == ["own0", "new0", "new1", "new2", "new3"]
    # more weight never means fewer new items
    counts = [sum(i.startswith("new") for i in compose(own, new, w)) for w in (0, 0.5, 2, 8)]
    assert counts == sorted(counts)


def test_explore_weight_trades_repeats_per_shopper_not_by_a_fixed_cap() -> None:
    """Catches a composition that acts like a fixed cap: at the same w, two shoppers get
    different numbers of new items, each according to their own chances."""
    loyal = compose(items("own", [0.6, 0.5, 0.5, 0.4, 0.4]), items("new", [0.01] * 5), 1.0)
    browser = compose(items("own", [0.05]), items("new", [0.04] * 5), 1.0)
    assert sum(i.startswith("new") for i in loyal) == 0
    assert sum(i.startswith("new") for i in browser) == 5


def test_explored_lists_never_hold_bought_items_or_near_duplicates() -> None:
    """Catches the explore path bypassing the exclusion (a bought item with the highest
    chance) or the near-duplicate and category rules of the diversity step."""
    shirt = duplicate_key("Striped Shirt", "Black")
    facts = {"new0": ItemFacts(shirt, "Shirts"), "new1": ItemFacts(shirt, "Shirts"),
             "new2": ItemFacts(None, "Shirts"), "new3": ItemFacts(None, "Shirts")}
    scored = (items("own", [0.3, 0.02]) + items("new", [0.2, 0.19, 0.18, 0.17, 0.01])
              + [ScoredItem("bought", 0.9)])
    got = [s.item_id for s in final_list(scored, {"bought"}, 5, facts,
                                         DiversityConfig(explore_weight=4.0),
                                         {"own0", "own1", "bought"}, calibrated=True)]
    assert "bought" not in got
    assert not {"new0", "new1"} <= set(got)             # the same title and colour once
    assert sum(facts[i].category == "Shirts" for i in got if i in facts) <= 2
    assert len(got) == 5 and len(set(got)) == 5
    # not calibrated (scores are not chances): the plain order, whatever the weight
    plain = final_list(scored, {"bought"}, 5, {}, DiversityConfig(explore_weight=4.0),
                       {"own0", "own1"}, calibrated=False)
    assert [s.item_id for s in plain][:2] == ["own0", "new0"]


def test_explore_weight_setting_is_read_and_validated() -> None:
    """Catches a setting that is not read, or a negative / non-numeric weight accepted."""
    assert load_settings({}).explore_weight == Settings.explore_weight == 0.25
    assert load_settings({"STYLESTREAM_EXPLORE_WEIGHT": "2.5"}).explore_weight == 2.5
    for bad in ("-1", "abc", "nan", "inf"):
        with pytest.raises(ConfigError, match="STYLESTREAM_EXPLORE_WEIGHT"):
            load_settings({"STYLESTREAM_EXPLORE_WEIGHT": bad})
    assert DiversityConfig.from_settings(
        load_settings({"STYLESTREAM_EXPLORE_WEIGHT": "0.5"})).explore_weight == 0.5


def calibration_groups(rng: np.random.Generator, n: int) -> tuple[RankingGroups, np.ndarray]:
    """Groups of 20 candidates, the first 5 the shopper's own; a candidate is a hit with
    chance σ(score − 1) when own and σ(score − 4) when new."""
    feats, labels, scores, offsets = [], [], [], [0]
    for _ in range(n):
        x = np.zeros((20, len(FEATURES)), np.float32)
        x[:5, IN_HISTORY] = 1.0
        x[:, LOG_HISTORY_SIZE] = math.log1p(5)
        s = rng.normal(size=20)
        truth = 1 / (1 + np.exp(-(s - np.where(x[:, IN_HISTORY] > 0, 1.0, 4.0))))
        feats.append(x)
        scores.append(s)
        labels.append((rng.random(20) < truth).astype(np.float32))
        offsets.append(offsets[-1] + 20)
    return (RankingGroups(np.concatenate(feats), np.concatenate(labels), np.array(offsets)),
            np.concatenate(scores))


def test_calibration_gives_the_chance_of_a_hit_per_segment() -> None:
    """Catches a calibration that ignores whether an item is the shopper's own (one curve for
    repeats and new items) or that is not a probability: predicted and observed hit rates
    agree per segment."""
    rng = np.random.default_rng(0)
    groups, scores = calibration_groups(rng, 2000)
    cal = fit_calibration(scores, groups, IN_HISTORY, LOG_HISTORY_SIZE)
    test, test_scores = calibration_groups(rng, 1000)
    p = np.concatenate([
        cal.probabilities(test_scores[lo:hi], test.features[lo:hi, IN_HISTORY],
                          test.features[lo:hi, LOG_HISTORY_SIZE])
        for lo, hi in zip(test.offsets[:-1], test.offsets[1:], strict=True)])
    assert ((p >= 0) & (p <= 1)).all()
    own = test.features[:, IN_HISTORY] > 0
    for mask in (own, ~own):
        assert p[mask].mean() == pytest.approx(test.labels[mask].mean(), abs=0.01)
    # at the same score, an own item is far likelier to come back than a new one
    one = cal.probabilities(np.array([0.0, 0.0]), np.array([1.0, 0.0]),
                            np.array([math.log1p(5)] * 2))
    assert one[0] > 3 * one[1]


def test_calibrated_checkpoint_makes_the_scorer_publish_chances(tmp_path) -> None:
    """Catches a calibration lost in the checkpoint, or a scorer that publishes raw ranker
    scores (the worker would then compose lists from numbers that are not chances)."""
    rng = np.random.default_rng(1)
    groups, scores = calibration_groups(rng, 200)
    model, _ = train_ranker(groups, groups, RankerConfig(len(FEATURES), epochs=2))
    cal = fit_calibration(model.score(groups.features), groups, IN_HISTORY, LOG_HISTORY_SIZE)
    path = save_ranker(tmp_path / "r.pt", model, version="t", feature_names=FEATURES,
                       calibration=cal)
    assert load_ranker(path).calibration == cal
    shopper = ShopperContext(user_id="u", now=10.0, scores={"a": 2.0, "b": 1.0},
                             behaviors={"a": "cart", "b": "view"},
                             last_touch={"a": 5.0, "b": 1.0}, last_event_time=5.0)
    cands = [Candidate("a", 2.0, {"history": (2.0, None)}),
             Candidate("n", 0.5, {"covisit": (0.5, "a")})]
    base = DecayCovisScorer()
    scorer = NextEventScorer(path, base)
    assert scorer.calibrated
    # the worker asks the chain, not the stage: the chain must pass the ability on
    assert ScorerChain((base, scorer)).calibrated
    request = RerankRequest([shopper], [cands], 10.0, PopularitySnapshot({"a": 1.0, "n": 2.0}))
    out = scorer.score(request)[0]
    assert {s.item_id for s in out} == {"a", "n"}
    assert all(0.0 <= s.score <= 1.0 for s in out)
    raw = save_ranker(tmp_path / "raw.pt", model, version="t", feature_names=FEATURES)
    assert not NextEventScorer(raw, base).calibrated
    assert not ScorerChain((base, NextEventScorer(raw, base))).calibrated
    assert not ScorerChain.of(base).calibrated


def test_ild_dissimilarities() -> None:
    """Catches ILD@5 computed from list length instead of pairs, unknown items counted as
    different, and a co-visitation dissimilarity that is not 0 for items with the same
    shoppers and 1 for items no shopper shares."""
    d = category_dissimilarity({"a": "x", "b": "x", "c": "y"})
    assert d("a", "b") == 0.0 and d("a", "c") == 1.0 and d("a", "zz") is None
    # pairs (a,b)=0, (a,c)=1, (b,c)=1 → 2/3; the unknown item adds no pair
    assert intra_list_diversity({"u": ["a", "b", "c", "zz"]}, ["u"], d) == pytest.approx(2 / 3)
    assert math.isnan(intra_list_diversity({"u": ["zz", "a"]}, ["u"], d))
    events = [Interaction(u, i, "view", 0.0) for u, i in
              [("1", "a"), ("2", "a"), ("1", "b"), ("2", "b"), ("3", "c")]]
    co = covisit_dissimilarity(events)
    assert co("a", "b") == pytest.approx(0.0)
    assert co("a", "c") == pytest.approx(1.0)
    assert co("a", "nowhere") is None
