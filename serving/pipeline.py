"""Assembles a rerank worker from settings: score store, scorer chain and content index.

:func:`build_chain` composes the chain once, stage by stage, from the inside out:

1. base scorer — the fusion network (:class:`serving.fusion_scorer.FusionScorer`) when a
   checkpoint and a feature store are given, else the decayed-score/co-visitation scorer;
2. paper-002 rule stages (:class:`serving.rule_scorer.RuleScorer`) when a catalog is given:
   visual similarity, popularity fit to the shopper's trendiness, category similarity, gender
   filter, purchased-item exclusion and optional store distance, with the base score as one more
   weighted term (``delta``), each stage adding its reason;
3. the learned final ranker (:class:`serving.next_event_scorer.NextEventScorer`) when a ranker
   checkpoint is given: the chain below becomes one of its pair features.

:func:`build_worker` adds content recall from the feature store's FAISS index, and the diversity
step's item facts (title + colour, category, visual vector) from the catalog and the feature
store. With ``follow_catalog`` the worker also follows ``catalog-updates``: new items are encoded
like the store's items and join the index and the stages that take new items without a restart
(:mod:`serving.catalog_updates`); a newer model file is picked up by the stage that reads it.
Nothing edits a built chain.

The worker sees one :class:`~serving.chain.ScorerChain` whatever the stages are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving.chain import ScorerChain
from serving.decay_scorer import DecayCovisScorer
from serving.diversity import DiversityConfig, ItemFacts, duplicate_key
from serving.recall import RecallConfig
from serving.scorer import Scorer
from serving.worker import MAX_BATCH, RerankWorker
from streams.config import Settings
from streams.store import ScoreStore

if TYPE_CHECKING:
    from models.feature_store import FeatureStore

log = logging.getLogger(__name__)


@dataclass
class ServingOptions:
    catalog_dir: str | None = None
    checkpoint: str | None = None
    features: str | None = None
    rules: bool = True
    base_weight: float = 1.0     # delta: weight of the base scorer inside the rule stage
    max_km: float | None = None
    distance_weight: float = 0.0
    follow_catalog: bool = True  # onboard new items from catalog-updates (needs features/rules)
    ranker: str | None = None    # final ranker checkpoint (models.next_event)
    event_clock: bool = False    # read state at the batch's newest event time (replays)


def item_facts(catalog: Mapping, vectors: Mapping) -> dict[str, ItemFacts]:
    """The diversity step's view of every known item: catalog title + colour and category,
    L2-normalised visual vector from the feature store."""
    import numpy as np

    facts = {}
    for item_id in set(catalog) | set(vectors):
        item = catalog.get(item_id)
        vector = vectors.get(item_id)
        if vector is not None:
            vector = np.asarray(vector, dtype=np.float32)
            norm = float(np.linalg.norm(vector))
            vector = vector / norm if norm > 0 else None
        facts[item_id] = ItemFacts(
            duplicate_key=duplicate_key(item.title, item.colour) if item else None,
            category=item.category if item else None, vector=vector)
    return facts


def load_catalog(options: ServingOptions) -> dict:
    """The catalog of ``options.catalog_dir`` (empty without one)."""
    if not options.catalog_dir:
        return {}
    from models.catalog import load_catalog as load

    return load(options.catalog_dir)


def load_features(options: ServingOptions) -> FeatureStore | None:
    """The feature store of ``options.features`` (the content recall index), or ``None``."""
    if not options.features:
        return None
    from models.feature_store import FeatureStore, resolve_store

    return FeatureStore.load(resolve_store(options.features))


def build_chain(options: ServingOptions, catalog: Mapping | None = None,
                features: FeatureStore | None = None) -> ScorerChain:
    """The scorer chain for ``options``, built once in order (module docstring).

    ``catalog``, ``features``: the loaded catalog and feature store (else read from
    ``options``); the fusion network scores the store's items, the rule stage compares their
    visual vectors."""
    if options.checkpoint and not options.features:
        raise ValueError("--checkpoint needs --features (the item feature store it scores)")
    catalog = load_catalog(options) if catalog is None else catalog
    features = load_features(options) if features is None else features
    titles = {i: item.title for i, item in catalog.items()}
    with_rules = options.rules and bool(catalog)
    stages: list[Scorer] = []
    if options.checkpoint:
        from serving.fusion_scorer import FusionScorer

        stages.append(FusionScorer(options.checkpoint, options.features))
    else:
        # alone, the co-visitation scorer's order is final: reasons for the published five only
        stages.append(DecayCovisScorer(titles, reasons_top=20 if with_rules else 5))
    if with_rules:
        from models.demo_catalog import load_store_coords
        from serving.rule_scorer import RuleConfig, RuleScorer

        vectors = ({} if features is None else
                   dict(zip(features.ids, features.visual, strict=True)))
        stores = load_store_coords(options.catalog_dir)
        config = RuleConfig(delta=options.base_weight, max_km=options.max_km,
                            distance_weight=options.distance_weight)
        stages.append(RuleScorer(catalog, vectors, stores=stores, config=config,
                                 base=stages[-1]))
    if options.ranker:
        from serving.next_event_scorer import NextEventScorer

        stages.append(NextEventScorer(options.ranker, stages[-1], titles))
    return ScorerChain(tuple(stages))


def build_worker(settings: Settings, options: ServingOptions | None = None,
                 max_batch: int = MAX_BATCH) -> RerankWorker:
    options = options or ServingOptions()
    catalog = load_catalog(options)
    features = load_features(options)
    chain = build_chain(options, catalog, features)
    log.info("rerank scorer %s%s", chain.version,
             " with content recall" if features is not None else "")
    onboarder = None
    if options.follow_catalog and (options.features or (options.catalog_dir and options.rules)):
        from serving.catalog_updates import ItemOnboarder

        onboarder = ItemOnboarder(features, options.catalog_dir, limits=settings.limits)
    store = ScoreStore.from_settings(settings)
    vectors = {} if features is None else dict(zip(features.ids, features.visual, strict=True))
    return RerankWorker(settings, store, chain, content_index=features, max_batch=max_batch,
                        recall_config=RecallConfig(exclude_behaviors=settings.exclude_behaviors),
                        onboarder=onboarder, item_facts=item_facts(catalog, vectors),
                        diversity=DiversityConfig.from_settings(settings),
                        event_clock=options.event_clock)
