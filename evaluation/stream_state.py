"""The stream's Redis state rebuilt from a log, without services: the replay's offline twin.

It applies events with the same rules as the Lua scripts (``streams/lua/``) through their
pure-Python twin (:class:`streams.decay.DecayedScores`: Eq. 1–3 in closed form, rebase, per-user
cap, strongest behaviour and last touch per item) and mirrors the global counters of
``apply_global_events.lua``: decayed item popularity, and co-visitation of each event's item
with the shopper's ``covisit_fanout`` most recent distinct items (both ways, weight of the
event, same closed form). Reads answer what :class:`streams.store.ScoreStore` answers to the
rerank worker (profiles of the 50 strongest items, trending, co-visited neighbours).

Differences from Redis, by design of a fast loop: co-visitation rows are not capped at 100
(the strongest are read, so only rows with more than 100 partners can differ), there is no
dedupe (offline logs have no redeliveries) and no TTL.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable
from operator import itemgetter

from models.datasets import Interaction
from serving.scorer import ShopperContext
from streams.config import DecaySettings
from streams.decay import DecayedScores, to_score

PROFILE_ITEMS = 50  # what ScoreStore.user_profiles reads per shopper


class StreamState:
    """Scores, behaviours, last touches, popularity and co-visitation after a log prefix."""

    def __init__(self, decay: DecaySettings, covisit_fanout: int = 3) -> None:
        self.decay = decay
        self.lam = decay.decay_per_second
        self.users = DecayedScores(decay.weights, decay.decay_per_day, decay.rebase_bound,
                                   decay.max_items_per_user)
        self.covisit_fanout = covisit_fanout
        self.last_event: dict[str, float] = {}
        self.recent: dict[str, list[str]] = defaultdict(list)
        self.popularity: dict[str, float] = defaultdict(float)
        self.covisits: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.ref: float | None = None
        self.applied = 0

    def apply(self, event: Interaction) -> None:
        """One event, in log order (the Lua's per-event rules)."""
        self.users.apply(str(self.applied), event.user, event.item, event.behavior, event.t)
        self.applied += 1
        if event.t > self.last_event.get(event.user, -math.inf):
            self.last_event[event.user] = event.t
        if self.ref is None:
            self.ref = event.t
        weight = self.decay.weights[event.behavior]
        inc = weight * math.exp(self.lam * (event.t - self.ref))
        self.popularity[event.item] += inc
        recent = self.recent[event.user]
        for other in recent[: self.covisit_fanout]:
            if other != event.item:
                self.covisits[event.item][other] += inc
                self.covisits[other][event.item] += inc
        if event.item in recent:
            recent.remove(event.item)
        recent.insert(0, event.item)
        del recent[self.covisit_fanout:]

    def apply_all(self, events: Iterable[Interaction]) -> None:
        for event in events:
            self.apply(event)

    # --- reads (what the rerank worker reads from Redis) ------------------------------------

    def shopper(self, user: str, at: float) -> ShopperContext:
        state = self.users.users.get(user)
        if state is None or state.ref is None:
            return ShopperContext(user_id=user, now=at)
        top = heapq.nlargest(PROFILE_ITEMS, state.acc.items(), key=lambda kv: (kv[1], kv[0]))
        scores = {i: to_score(a, state.ref, at, self.decay.decay_per_day) for i, a in top}
        return ShopperContext(
            user_id=user, now=at, scores=scores, behaviors=dict(state.best),
            purchased={i for i, b in state.best.items() if b == "purchase"},
            last_touch=dict(state.last), last_event_time=self.last_event.get(user))

    def _factor(self, at: float) -> float:
        return 0.0 if self.ref is None else math.exp(-self.lam * (at - self.ref))

    def trending(self, at: float, n: int) -> list[tuple[str, float]]:
        factor = self._factor(at)
        top = heapq.nlargest(n, self.popularity.items(), key=lambda kv: (kv[1], kv[0]))
        return [(item, acc * factor) for item, acc in top]

    def popularity_of(self, items: Iterable[str], at: float) -> dict[str, float]:
        factor = self._factor(at)
        return {i: self.popularity.get(i, 0.0) * factor for i in items}

    def covisited(self, items: Iterable[str], n: int) -> dict[str, list[tuple[str, float]]]:
        out = {}
        for item in items:
            row = self.covisits.get(item)
            if row:
                out[item] = sorted(row.items(), key=itemgetter(1), reverse=True)[:n]
            else:
                out[item] = []
        return out
