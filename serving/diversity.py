"""The diversity step after scoring: no near-duplicates in a Top-5, a cap per category.

A greedy pass down the scored list (the greedy-cap form of Maximal Marginal Relevance,
Carbonell and Goldstein 1998, with the similarity term as a hard constraint): an item is taken
unless

- it is a near-duplicate of an item already taken: the same normalised title and colour, or a
  visual cosine similarity above ``visual_threshold`` (catalog items with image features), or
- ``max_per_category`` items of its category are already taken.

Items the catalog does not describe (no title, colour, category or vector) are never held
back. Near-duplicates are never shown; when the category cap leaves fewer than ``k`` items and
``fill`` is set, the best items held back by the cap fill the list, in score order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from serving.explore import BestFirst, ByScore, InOrder, compose
from streams.config import Settings


@dataclass(frozen=True)
class DiversityConfig:
    """Defaults are the settings' (``streams.config.Settings``; :meth:`from_settings`)."""

    max_per_category: int = Settings.max_per_category
    visual_threshold: float = Settings.duplicate_cosine
    fill: bool = True
    #: at most this many of the shopper's own items in a list (None: no cap), so that a list
    #: keeps room for discovery; items held back by it fill the list like the category cap's
    max_repeats: int | None = Settings.max_repeats
    #: w of the repeat/explore composition (:mod:`serving.explore`; None: the score order)
    explore_weight: float | None = Settings.explore_weight

    @classmethod
    def from_settings(cls, settings: Settings) -> DiversityConfig:
        return cls(max_per_category=settings.max_per_category,
                   visual_threshold=settings.duplicate_cosine, max_repeats=settings.max_repeats,
                   explore_weight=settings.explore_weight)


@dataclass(frozen=True)
class ItemFacts:
    """What the diversity step knows of an item (from the catalog and the feature store)."""

    duplicate_key: str | None = None
    category: str | None = None
    vector: np.ndarray | None = None   # L2-normalised visual vector


def duplicate_key(title: str | None, colour: str | None) -> str | None:
    """Normalised "title|colour" (case and spacing folded); None without a title."""
    if not title:
        return None
    return " ".join(title.lower().split()) + "|" + " ".join((colour or "").lower().split())


class _Picker:
    """The constraints of one list: :meth:`offer` takes an item, holds it back (repeat or
    category cap: it may fill the list later) or drops it (a near-duplicate)."""

    def __init__(self, facts: Mapping[str, ItemFacts], config: DiversityConfig,
                 repeats: set[str] | frozenset[str]) -> None:
        self.facts = facts
        self.config = config
        self.repeats = repeats
        self.taken: list = []
        self.held_by_cap: list = []
        self.n_repeats = 0
        self.keys: set[str] = set()
        self.vectors: list[np.ndarray] = []
        self.per_category: Counter[str] = Counter()

    def offer(self, scored) -> bool:
        config = self.config
        is_repeat = scored.item_id in self.repeats
        if is_repeat and config.max_repeats is not None and self.n_repeats >= config.max_repeats:
            self.held_by_cap.append(scored)
            return False
        fact = self.facts.get(scored.item_id)
        if fact is None:
            self.taken.append(scored)
            self.n_repeats += is_repeat
            return True
        if fact.duplicate_key is not None and fact.duplicate_key in self.keys:
            return False
        if fact.vector is not None and self.vectors and max(
                float(fact.vector @ v) for v in self.vectors) > config.visual_threshold:
            return False
        if fact.category is not None and self.per_category[fact.category] >= \
                config.max_per_category:
            self.held_by_cap.append(scored)
            return False
        self.taken.append(scored)
        self.n_repeats += is_repeat
        if fact.duplicate_key is not None:
            self.keys.add(fact.duplicate_key)
        if fact.vector is not None:
            self.vectors.append(fact.vector)
        if fact.category is not None:
            self.per_category[fact.category] += 1
        return True

    def finish(self, k: int) -> list:
        if self.config.fill and len(self.taken) < k:
            self.taken.extend(self.held_by_cap[: k - len(self.taken)])
        return self.taken


def diverse_top(ranked: Iterable, k: int, facts: Mapping[str, ItemFacts],
                config: DiversityConfig = DiversityConfig(),
                repeats: set[str] | frozenset[str] = frozenset(),
                explore: float | None = None) -> list:
    """The first ``k`` of ``ranked`` (objects with ``item_id``, best first) that pass the
    near-duplicate, per-category and repeat constraints (``repeats``: the shopper's own
    items). With ``explore`` (a weight w; the scores are calibrated chances of a hit), the
    order is :func:`serving.explore.explore_compose`'s instead of ``ranked``'s."""
    return _pick(list(ranked), InOrder, k, _Picker(facts, config, repeats), explore)


def final_list(scored: Iterable, excluded: set[str], k: int, facts: Mapping[str, ItemFacts],
               config: DiversityConfig = DiversityConfig(),
               repeats: set[str] | frozenset[str] = frozenset(),
               calibrated: bool = False) -> list:
    """The published list: best score first (ties by item id), excluded items dropped, then
    :func:`diverse_top`; when the scores are ``calibrated`` chances of a hit (the final ranker)
    and ``config.explore_weight`` is set, the per-shopper repeat/explore composition
    (:mod:`serving.explore`). The worker and the offline replay both call this.

    The same list as :func:`diverse_top` over every candidate sorted, but lazily: candidates
    come off a heap (:class:`serving.explore.ByScore`) only as far as the caps need to fill
    ``k`` places (a Top-5 of ~100 candidates orders a handful of them)."""
    kept = [s for s in scored if s.item_id not in excluded]
    explore = config.explore_weight if calibrated else None
    return _pick(kept, ByScore, k, _Picker(facts, config, repeats), explore)


def _pick(items: list, best_first: Callable[[Iterable], BestFirst], k: int, picker: _Picker,
          explore: float | None) -> list:
    """The list ``picker`` lets through from ``items`` taken in ``best_first`` order — with
    ``explore``, composed from the shopper's own items and the new ones
    (:func:`serving.explore.compose`) — filled from the held-back items if short."""
    if explore is not None:
        repeats = picker.repeats
        picker.taken = compose(best_first([s for s in items if s.item_id in repeats]),
                               best_first([s for s in items if s.item_id not in repeats]),
                               k, explore, picker.offer)
        return picker.finish(k)
    best = best_first(items)
    while best and len(picker.taken) < k:
        picker.offer(best.pop())
    return picker.finish(k)
