"""The rerank seam: the chain ``build_chain`` assembles per option set, and what reaches its
stages while it serves (a hot reload, a new catalog item) without anyone editing it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from models.catalog import CatalogItem, save_catalog
from models.fusion import FusionConfig, FusionRanker, ItemFeatures, save_checkpoint
from models.next_event import NextEventRanker, RankerConfig, save_ranker
from serving.chain import ScorerChain
from serving.decay_scorer import DecayCovisScorer
from serving.fusion_scorer import FusionScorer
from serving.next_event_scorer import NextEventScorer
from serving.pair_features import FEATURES
from serving.pipeline import ServingOptions, build_chain
from serving.rule_scorer import RuleScorer
from serving.scorer import (
    AcceptsNewItems,
    Candidate,
    NewItems,
    PopularitySnapshot,
    Reloadable,
    RerankRequest,
    Scorer,
    ShopperContext,
)

torch.set_num_threads(1)


def _later(path: Path) -> None:
    """Move a file's mtime on, so that a rewrite within the same clock tick is seen."""
    stamp = time.time_ns() + 10**9
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def served(trained, tmp_path: Path) -> dict[str, str]:
    """A catalog of the toy store's items, a local copy of the fusion checkpoint and a final
    ranker checkpoint: every file a chain can be built from."""
    checkpoint, store, _, features = trained
    catalog = tmp_path / "catalog"
    save_catalog(catalog, [CatalogItem(i, f"Item {i}", "Tshirts" if int(i[1:]) % 2 else "Jeans",
                                       "Topwear" if int(i[1:]) % 2 else "Bottomwear")
                           for i in features.ids])
    local = tmp_path / "model.pt"
    local.write_bytes(checkpoint.read_bytes())
    torch.manual_seed(3)
    ranker = save_ranker(tmp_path / "ranker.pt", NextEventRanker(RankerConfig(len(FEATURES))),
                         version="r1", feature_names=FEATURES)
    return {"catalog_dir": str(catalog), "features": str(store.parent),
            "checkpoint": str(local), "ranker": str(ranker)}


OPTION_SETS = {
    "nothing": ((), [DecayCovisScorer]),
    "catalog": (("catalog_dir",), [DecayCovisScorer, RuleScorer]),
    "catalog+features": (("catalog_dir", "features"), [DecayCovisScorer, RuleScorer]),
    "network": (("features", "checkpoint"), [FusionScorer]),
    "network+catalog": (("catalog_dir", "features", "checkpoint"), [FusionScorer, RuleScorer]),
    "ranker": (("ranker",), [DecayCovisScorer, NextEventScorer]),
    "ranker+catalog": (("catalog_dir", "ranker"),
                       [DecayCovisScorer, RuleScorer, NextEventScorer]),
    "everything": (("catalog_dir", "features", "checkpoint", "ranker"),
                   [FusionScorer, RuleScorer, NextEventScorer]),
}


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_each_option_set_builds_its_stages_in_order(served, name: str) -> None:
    """Catches a stage left out, built twice or in the wrong order for an option set, a stage
    that does not wrap the one below it, and a chain that claims not to read popularity while
    a rule stage or final ranker (which read it) is in it."""
    given, kinds = OPTION_SETS[name]
    chain = build_chain(ServingOptions(**{k: served[k] for k in given}))
    assert [type(stage) for stage in chain.stages] == kinds
    for below, above in zip(chain.stages, chain.stages[1:], strict=False):
        assert above.base is below  # type: ignore[attr-defined]
    assert isinstance(chain, Scorer) and chain.version == chain.top.version
    reads = {RuleScorer, NextEventScorer} & set(kinds)
    assert chain.reads_popularity == bool(reads)
    # the catalog's rule stage reasons over the top 20 the co-visitation scorer explains
    if kinds[0] is DecayCovisScorer:
        assert chain.stages[0].reasons_top == (20 if RuleScorer in kinds else 5)  # type: ignore


def test_a_checkpoint_without_its_feature_store_is_a_clear_error(served) -> None:
    """Catches a fusion network built without the items it scores."""
    with pytest.raises(ValueError, match="--checkpoint needs --features"):
        build_chain(ServingOptions(checkpoint=served["checkpoint"]))


def test_hot_reloads_reach_the_stage_whose_file_changed(served, trained) -> None:
    """Catches a reload that stops at the top stage (the fusion network under the rules and the
    ranker never reloads), a published version that does not follow a reloaded stage, and a
    chain that reports a reload when no file changed."""
    _, _, result, _ = trained
    chain = build_chain(ServingOptions(**served))
    fusion, rules, ranker = chain.stages
    assert isinstance(fusion, Reloadable) and isinstance(ranker, Reloadable)
    assert not isinstance(rules, Reloadable)
    assert chain.version == "r1+rules-1+toy-1@toy" and chain.maybe_reload() is False
    torch.manual_seed(99)
    save_checkpoint(served["checkpoint"], FusionRanker(FusionConfig(
        **result.model.config.__dict__)), version="toy-2", users=result.users)
    _later(Path(served["checkpoint"]))
    assert chain.maybe_reload() is True
    assert fusion.version == "toy-2@toy" and chain.version == "r1+rules-1+toy-2@toy"
    assert chain.stages == (fusion, rules, ranker)
    save_ranker(served["ranker"], NextEventRanker(RankerConfig(len(FEATURES))), version="r2",
                feature_names=FEATURES)
    _later(Path(served["ranker"]))
    assert chain.maybe_reload() is True and chain.version == "r2+rules-1+toy-2@toy"
    assert chain.maybe_reload() is False


def test_a_new_item_reaches_the_stages_that_take_it_only_when_applied(served, trained) -> None:
    """Catches a new item that misses the fusion network or the rule catalog (the rule stage
    drops items it does not know), and a prepare step that changes what is served before it
    is applied (it runs in a thread while the event loop scores)."""
    _, _, _, features = trained
    chain = build_chain(ServingOptions(**served))
    fusion, rules, ranker = chain.stages
    assert isinstance(fusion, AcceptsNewItems) and isinstance(rules, AcceptsNewItems)
    assert not isinstance(ranker, AcceptsNewItems)
    twin = features.ids.index("i7")
    new = NewItems([CatalogItem("new-7", "Item new-7", "Tshirts", "Topwear")],
                   ItemFeatures(["new-7"], features.visual[[twin]], features.text[[twin]],
                                features.present[[twin]]))
    shopper = ShopperContext("u1", 0.0, scores={"i1": 2.0, "i3": 1.0},
                             behaviors={"i1": "cart", "i3": "view"})
    request = RerankRequest([shopper], [[Candidate("new-7"), Candidate("i7")]], 0.0,
                            PopularitySnapshot({"i7": 3.0}))
    steps = chain.onboarding_steps(new)
    assert len(steps) == 2
    # prepared, not applied: the rule stage still drops the unknown item, the network has no
    # features for it
    assert [s.item_id for s in rules.score(request)[0]] == ["i7"]
    assert fusion.score(request)[0][0].reasons == ["no item features yet"]
    for step in steps:
        step()
    assert chain.stages == (fusion, rules, ranker)
    by_rules = {s.item_id: s for s in rules.score(request)[0]}
    by_network = {s.item_id: s for s in fusion.score(request)[0]}
    assert set(by_rules) == {"new-7", "i7"} and rules.catalog["new-7"].title == "Item new-7"
    # same features as i7: the network and the rule stage score it as i7's twin
    assert by_network["new-7"].score == pytest.approx(by_network["i7"].score, abs=1e-4)
    twin_terms, i7_terms = rules.terms(shopper, ["new-7", "i7"], {})
    assert twin_terms.visual == pytest.approx(i7_terms.visual, abs=1e-5)
    assert twin_terms.visual != 0.0  # the new item's visual vector joined the rule stage
    assert twin_terms.category == i7_terms.category

def test_the_final_ranker_orders_only_what_the_rule_stage_kept(served) -> None:
    """Catches the final ranker bypassing the rule stage's filters: it used to score every
    recalled candidate, so an item the rules drop (unknown to the catalog, bought, of the
    other gender, too far away) came back into the list whenever ``--ranker`` was on."""
    chain = build_chain(ServingOptions(catalog_dir=served["catalog_dir"],
                                       ranker=served["ranker"]))
    rules, ranker = chain.stages[1], chain.stages[2]
    shopper = ShopperContext("u1", 0.0, scores={"i1": 2.0, "i3": 1.0},
                             behaviors={"i1": "cart", "i3": "purchase"}, purchased={"i3"})
    request = RerankRequest([shopper], [[Candidate("i1"), Candidate("i3"), Candidate("ghost"),
                                         Candidate("i7")]], 0.0, PopularitySnapshot({"i7": 3.0}))
    kept = {s.item_id for s in rules.score(request)[0]}
    assert kept == {"i1", "i7"}
    assert {s.item_id for s in ranker.score(request)[0]} == kept


def test_a_request_needs_one_candidate_list_per_shopper() -> None:
    """Catches a batch whose shoppers and candidate lists are misaligned reaching a scorer
    (each stage zips them)."""
    with pytest.raises(ValueError, match="one candidate list per shopper"):
        RerankRequest([ShopperContext("u", 0.0)], [], 0.0)
    with pytest.raises(ValueError, match="at least one stage"):
        ScorerChain(())
