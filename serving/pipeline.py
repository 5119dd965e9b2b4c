"""Assembles a rerank worker from settings: score store, scorer chain and content index.

The chain, from the inside out:

1. base scorer — the fusion network (:class:`serving.fusion_scorer.FusionScorer`) when a
   checkpoint and a feature store are given, else the decayed-score/co-visitation scorer;
2. paper-002 rule stages (:class:`serving.rule_scorer.RuleScorer`) when a catalog is given:
   visual similarity, popularity fit to the shopper's trendiness, category similarity, gender
   filter, purchased-item exclusion and optional store distance, with the base score as one more
   weighted term (``delta``), each stage adding its reason;
3. the learned final ranker (:class:`serving.next_event_scorer.NextEventScorer`) when a ranker
   checkpoint is given: the chain below becomes one of its pair features;
4. content recall from the feature store's FAISS index, and the diversity step's item facts
   (title + colour, category, visual vector) from the catalog and the feature store.

With ``follow_catalog`` the worker also follows ``catalog-updates``: new items are encoded like
the store's items and join the index and the chain without a restart
(:mod:`serving.catalog_updates`).

The worker sees one :class:`~serving.scorer.Scorer` whatever the chain is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from serving.decay_scorer import DecayCovisScorer
from serving.diversity import DiversityConfig, ItemFacts, duplicate_key
from serving.recall import ContentIndex, RecallConfig
from serving.scorer import Scorer
from serving.worker import RerankWorker
from streams.config import Settings
from streams.store import ScoreStore

log = logging.getLogger(__name__)


@dataclass
class PopularitySnapshot:
    """The decayed popularity the worker read for the current micro-batch (rules read it)."""

    values: dict[str, float] = field(default_factory=dict)

    def update(self, values: Mapping[str, float]) -> None:
        self.values = dict(values)

    def __call__(self) -> Mapping[str, float]:
        return self.values


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


def build_scorer(options: ServingOptions, popularity: PopularitySnapshot,
                 catalog: Mapping | None = None) -> tuple[Scorer, ContentIndex | None]:
    """The scorer chain and the content index (``catalog``: the loaded catalog, else it is read
    from ``options.catalog_dir``)."""
    catalog = _catalog(options) if catalog is None else catalog
    base, content = _build_chain(options, popularity, catalog)
    if options.ranker:
        from serving.next_event_scorer import NextEventScorer

        titles = {i: item.title for i, item in catalog.items()}
        base = NextEventScorer(options.ranker, base, popularity, titles)
    return base, content


def _catalog(options: ServingOptions) -> dict:
    if not options.catalog_dir:
        return {}
    from models.catalog import load_catalog

    return load_catalog(options.catalog_dir)


def _build_chain(options: ServingOptions, popularity: PopularitySnapshot, catalog: Mapping
                 ) -> tuple[Scorer, ContentIndex | None]:
    titles = {i: item.title for i, item in catalog.items()}
    # alone, the co-visitation scorer's order is final: reasons for the published five only
    base: Scorer = DecayCovisScorer(titles, reasons_top=20 if options.rules and catalog else 5)
    content: ContentIndex | None = None
    vectors: dict = {}
    if options.features:
        from models.feature_store import FeatureStore, resolve_store

        store = FeatureStore.load(resolve_store(options.features))
        content = store
        vectors = dict(zip(store.ids, store.visual, strict=True))
        if options.checkpoint:
            from serving.fusion_scorer import FusionScorer

            base = FusionScorer(options.checkpoint, options.features)
    elif options.checkpoint:
        raise ValueError("--checkpoint needs --features (the item feature store it scores)")
    if not (options.rules and catalog):
        return base, content
    from models.demo_catalog import load_stores
    from serving.rule_scorer import RuleConfig, RuleScorer

    stores = {s.store_id: (s.lat, s.lon) for s in load_stores(options.catalog_dir).values()}
    config = RuleConfig(delta=options.base_weight, max_km=options.max_km,
                        distance_weight=options.distance_weight)
    return RuleScorer(catalog, vectors, popularity=popularity, stores=stores, config=config,
                      base=base), content


def build_worker(settings: Settings, options: ServingOptions | None = None,
                 max_batch: int = 64) -> RerankWorker:
    options = options or ServingOptions()
    popularity = PopularitySnapshot()
    catalog = _catalog(options)
    scorer, content = build_scorer(options, popularity, catalog)
    log.info("rerank scorer %s%s", scorer.version,
             " with content recall" if content is not None else "")
    onboarder = None
    if options.follow_catalog and (options.features or (options.catalog_dir and options.rules)):
        from serving.catalog_updates import ItemOnboarder

        # content is the FeatureStore whenever features are given (build_scorer)
        onboarder = ItemOnboarder(cast(Any, content), options.catalog_dir,
                                  limits=settings.limits)
    store = ScoreStore.from_settings(settings)
    vectors = ({} if content is None else
               dict(zip(cast(Any, content).ids, cast(Any, content).visual, strict=True)))
    return RerankWorker(settings, store, scorer, content_index=content, max_batch=max_batch,
                        recall_config=RecallConfig(exclude_behaviors=settings.exclude_behaviors),
                        popularity_sink=popularity.update, onboarder=onboarder,
                        item_facts=item_facts(catalog, vectors),
                        diversity=DiversityConfig.from_settings(settings),
                        event_clock=options.event_clock)

