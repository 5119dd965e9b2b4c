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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

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

    @classmethod
    def from_settings(cls, settings: Settings) -> DiversityConfig:
        return cls(max_per_category=settings.max_per_category,
                   visual_threshold=settings.duplicate_cosine, max_repeats=settings.max_repeats)


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


def diverse_top(ranked: Iterable, k: int, facts: Mapping[str, ItemFacts],
                config: DiversityConfig = DiversityConfig(),
                repeats: set[str] | frozenset[str] = frozenset()) -> list:
    """The first ``k`` of ``ranked`` (objects with ``item_id``, best first) that pass the
    near-duplicate, per-category and repeat constraints (``repeats``: the shopper's own
    items)."""
    taken: list = []
    n_repeats = 0
    held_by_cap: list = []
    keys: set[str] = set()
    vectors: list[np.ndarray] = []
    per_category: Counter[str] = Counter()
    for scored in ranked:
        if len(taken) == k:
            break
        is_repeat = scored.item_id in repeats
        if is_repeat and config.max_repeats is not None and n_repeats >= config.max_repeats:
            held_by_cap.append(scored)
            continue
        fact = facts.get(scored.item_id)
        if fact is None:
            taken.append(scored)
            n_repeats += is_repeat
            continue
        if fact.duplicate_key is not None and fact.duplicate_key in keys:
            continue
        if fact.vector is not None and vectors and max(
                float(fact.vector @ v) for v in vectors) > config.visual_threshold:
            continue
        if fact.category is not None and per_category[fact.category] >= config.max_per_category:
            held_by_cap.append(scored)
            continue
        taken.append(scored)
        n_repeats += is_repeat
        if fact.duplicate_key is not None:
            keys.add(fact.duplicate_key)
        if fact.vector is not None:
            vectors.append(fact.vector)
        if fact.category is not None:
            per_category[fact.category] += 1
    if config.fill and len(taken) < k:
        taken.extend(held_by_cap[: k - len(taken)])
    return taken


def final_list(scored: Iterable, excluded: set[str], k: int, facts: Mapping[str, ItemFacts],
               config: DiversityConfig = DiversityConfig(),
               repeats: set[str] | frozenset[str] = frozenset()) -> list:
    """The published list: best score first (ties by item id), excluded items dropped, then
    :func:`diverse_top`. The worker and the offline replay both call this."""
    ranked = sorted((s for s in scored if s.item_id not in excluded),
                    key=lambda s: (-s.score, s.item_id))
    return diverse_top(ranked, k, facts, config, repeats)
