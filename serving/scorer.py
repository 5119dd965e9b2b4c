"""The ``Scorer`` interface the rerank worker ranks through, and the records it passes.

One small interface (the RecBole habit): the decayed-score/co-visitation scorer, the fusion
network and the paper-002 rule stages all take a micro-batch of shoppers with their candidates
and return scored candidates with reasons. The worker never branches on which scorer it holds,
and offline evaluation calls the same scorers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class Candidate:
    """An item recalled for a shopper, with where it came from.

    ``sources`` maps a recall source (``"covisit"``, ``"trending"``, ``"content"``, ...) to the
    strength it gave and, when an item of the shopper's history drove it, that item's id.
    """

    item_id: str
    recall_score: float = 0.0
    sources: dict[str, tuple[float, str | None]] = field(default_factory=dict)


@dataclass
class ShopperContext:
    """What the ranker knows about a shopper at request time (read from Redis).

    ``scores``: decayed scores S(u,i,T) of the shopper's strongest items (Eq. 3, closed form).
    ``behaviors``: the strongest behaviour seen per item (for reasons: "you carted").
    ``last_touch``: the newest event time per item; ``last_event_time``: the shopper's newest
    event time (the reference the ranker's recency features are measured from).
    """

    user_id: str
    now: float
    scores: dict[str, float] = field(default_factory=dict)
    behaviors: dict[str, str] = field(default_factory=dict)
    purchased: set[str] = field(default_factory=set)
    last_touch: dict[str, float] = field(default_factory=dict)
    last_event_time: float | None = None
    trendiness: float | None = None
    gender: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass
class ScoredItem:
    item_id: str
    score: float
    reasons: list[str] = field(default_factory=list)


@runtime_checkable
class Scorer(Protocol):
    """Ranks a micro-batch: ``score(shoppers, candidates)[k]`` scores ``candidates[k]``.

    Implementations return one :class:`ScoredItem` per candidate (any order); the worker sorts
    and cuts to the Top-5. ``version`` goes into every published message (``model_version``).

    Optional: a class attribute ``reads_popularity = False`` tells the worker that the chain
    never reads the popularity snapshot, so it skips reading item popularity per micro-batch
    (absent means True: the worker reads it).
    """

    version: str

    def score(self, shoppers: list[ShopperContext],
              candidates: list[list[Candidate]]) -> list[list[ScoredItem]]: ...
