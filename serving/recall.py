"""Candidate recall: a few hundred items per shopper, cheaply, before the GPU rerank.

Four sources, each recorded on the candidate so the ranker can explain it and learn from it:

- ``history``: the shopper's own items (repeat-aware recall): the ``history_candidates``
  strongest items by S(u,i,T) (Eq. 3) whose strongest behaviour is not one of
  ``exclude_behaviors`` (by default only a purchase excludes an item: a viewed, saved or carted
  item is exactly what a shopper often comes back to). Strength S(u,i,T); the ranker also sees
  the strongest behaviour and the time since the last touch.
- ``covisit``: items co-visited with the shopper's strongest items. A candidate's strength is
  ``Σ_j S(u,j) · C(j,i) / max_k C(j,k)`` over the shopper's top items j: the decayed score of
  the history item (Eq. 3) times the normalised, time-decayed co-visitation count.
- ``content``: nearest neighbours of the shopper's strongest items in the fused-feature index
  (FAISS), once item features exist; strength ``Σ_j S(u,j) · sim(j,i)``.
- ``trending``: the items with the highest decayed popularity, scaled by ``trend_weight`` times
  the shopper's strongest score, so a new shopper still gets a list and a regular one sees
  trends only where their history is silent.

Items with an excluding behaviour (purchase by default, paper 002 §3.5) are never recalled by
any source; the shopper's seed items themselves are not recalled as their own neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

from serving.scorer import Candidate, ShopperContext
from streams.config import Settings
from streams.runtime import collector_paused

_strength = itemgetter(1)


class ContentIndex(Protocol):
    """Nearest neighbours by fused item vector (``models.feature_store`` implements it)."""

    def neighbours(self, item_ids: list[str], k: int) -> dict[str, list[tuple[str, float]]]: ...


#: Behaviours that take an item out of every list by default: a purchase (paper 002 §3.5);
#: the one definition is ``Settings.exclude_behaviors`` (STYLESTREAM_EXCLUDE_BEHAVIORS).
DEFAULT_EXCLUDE_BEHAVIORS: frozenset[str] = Settings.exclude_behaviors


@dataclass(frozen=True)
class RecallConfig:
    history_items: int = 10        # strongest history items that seed co-visitation/content
    history_candidates: int = 30   # strongest history items recalled as candidates themselves
    exclude_behaviors: frozenset[str] = DEFAULT_EXCLUDE_BEHAVIORS
    covisit_per_item: int = 20
    content_per_item: int = 20
    trending: int = 30
    trend_weight: float = 0.2
    max_candidates: int = 100


def excluded_items(behaviors: Mapping[str, str], config: RecallConfig) -> set[str]:
    """The shopper's items whose strongest behaviour excludes them from every list."""
    return {item for item, behavior in behaviors.items()
            if behavior in config.exclude_behaviors}


def recall_candidates(history: Mapping[str, float],
                      covisits: Mapping[str, list[tuple[str, float]]],
                      trending: list[tuple[str, float]],
                      content: Mapping[str, list[tuple[str, float]]] | None = None,
                      exclude: set[str] | None = None,
                      config: RecallConfig = RecallConfig()) -> list[Candidate]:
    """Merge the four sources into at most ``max_candidates`` candidates, strongest first.

    ``history``: the shopper's decayed scores S(u,j,T) (strongest items);
    ``covisits``/``content``: neighbours of history items with strengths/similarities;
    ``trending``: (item, decayed popularity), most popular first;
    ``exclude``: items never recalled (see :func:`excluded_items`).
    """
    excluded = set(exclude or ())
    total: dict[str, float] = {}
    history_gain: dict[str, float] = {}
    # strongest first, once (history is usually read strongest first: then this sort is O(n));
    # the sort is stable, so filtering after it keeps the order filtering before it would give
    strongest = sorted(history.items(), key=itemgetter(1), reverse=True)
    if config.history_candidates > 0:
        own = [(i, s) for i, s in strongest if i not in excluded and s > 0]
        for item, score in own[: config.history_candidates]:
            history_gain[item] = total[item] = score
    total_get = total.get
    # per source: item -> summed strength, and item -> driver. Seeds arrive strongest first, so
    # the first driver kept is the shopper's strongest item among those that recalled the item
    gains: dict[str, dict[str, float]] = {"covisit": {}, "content": {}}
    drivers: dict[str, dict[str, str]] = {"covisit": {}, "content": {}}
    seeds = strongest[: config.history_items]
    for source, neighbours, per_item in (("covisit", covisits, config.covisit_per_item),
                                         ("content", content or {}, config.content_per_item)):
        source_gain, source_driver = gains[source], drivers[source]
        for seed, seed_score in seeds:
            found = neighbours.get(seed)
            if not found:
                continue
            found = found[:per_item]
            top = max(map(_strength, found), default=0.0)
            if top <= 0:
                continue
            scale = seed_score / top
            for item, strength in found:
                if strength <= 0 or item in excluded or item == seed:
                    continue
                gain = scale * strength
                total[item] = total_get(item, 0.0) + gain
                if item in source_gain:
                    source_gain[item] += gain
                else:
                    source_gain[item] = gain
                    source_driver[item] = seed
    top_user = max((s for _, s in seeds), default=1.0) or 1.0
    top_pop = trending[0][1] if trending and trending[0][1] > 0 else 1.0
    trend_gain: dict[str, float] = {}
    for item, popularity in trending[: config.trending]:
        if item not in excluded:
            gain = config.trend_weight * top_user * popularity / top_pop
            total[item] = total.get(item, 0.0) + gain
            trend_gain[item] = gain
    # strongest first, ties by item id: sort by id, then (stable) by score descending
    ranked = sorted(total.items(), key=itemgetter(0))
    ranked.sort(key=itemgetter(1), reverse=True)
    covisit_gain, covisit_driver = gains["covisit"], drivers["covisit"]
    content_gain, content_driver = gains["content"], drivers["content"]
    out = []
    for item, score in ranked[: config.max_candidates]:
        sources: dict[str, tuple[float, str | None]] = {}
        if item in history_gain:
            sources["history"] = (history_gain[item], item)
        if item in covisit_gain:
            sources["covisit"] = (covisit_gain[item], covisit_driver[item])
        if item in content_gain:
            sources["content"] = (content_gain[item], content_driver[item])
        if item in trend_gain:
            sources["trending"] = (trend_gain[item], None)
        out.append(Candidate(item, score, sources))
    return out


def seed_items(shoppers: Sequence[ShopperContext], config: RecallConfig) -> list[str]:
    """The items that seed co-visitation and content recall for a micro-batch: each shopper's
    ``history_items`` strongest, deduplicated and sorted (one read for the whole batch)."""
    return sorted({i for s in shoppers for i, _ in sorted(
        s.scores.items(), key=itemgetter(1), reverse=True)[: config.history_items]})


def recall_batch(shoppers: Sequence[ShopperContext],
                 covisits: Mapping[str, list[tuple[str, float]]],
                 trending: list[tuple[str, float]],
                 content: Mapping[str, list[tuple[str, float]]] | None,
                 config: RecallConfig) -> tuple[list[list[Candidate]], list[set[str]]]:
    """Per shopper of a micro-batch: the excluded items and the recalled candidates (the
    worker and the offline replay both call this, after reading the sources of
    :func:`seed_items`)."""
    excluded = [excluded_items(s.behaviors, config) for s in shoppers]
    with collector_paused():   # the batch's candidates live until it is published
        candidates = [recall_candidates(s.scores, covisits, trending, content, exclude=skip,
                                        config=config)
                      for s, skip in zip(shoppers, excluded, strict=True)]
    return candidates, excluded


def popularity_items(shoppers: Sequence[ShopperContext],
                     candidates: Sequence[Sequence[Candidate]]) -> list[str]:
    """The items whose popularity the scorers may read: every candidate and history item."""
    return sorted({c.item_id for cs in candidates for c in cs}
                  | {i for s in shoppers for i in s.scores})
