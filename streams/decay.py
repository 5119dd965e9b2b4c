"""Paper 000 Eq. 1–3 (multi-behaviour weights with exponential time decay), in closed form.

The paper's score of user u for item i at time T is

    S(u,i,T) = Σ_k w_k · exp(−λ · daysAgo_k)            (Eq. 1–3, daysAgo_k = (T − t_k)/86400)

Rewriting every score as time passes is what the design avoids. Per user we keep a reference
time ``r_u`` and the accumulator

    A(u,i) = Σ_k w_k · exp(λ · (t_k − r_u)),   so that   S(u,i,T) = A(u,i) · exp(−λ (T − r_u)).

One event adds ``w · exp(λ (t − r_u))`` to one accumulator and touches nothing else; within a
user the order of A is the order of S at any T; event time (not arrival time) makes replays and
late events exact. When ``λ (t − r_u)`` passes ``rebase_bound`` the user is rebased once: every
A is multiplied by ``exp(−λ (t' − r_u))`` and ``r_u = t'``.

Reading of the paper: ``daysAgo`` is continuous (seconds / 86400), not rounded to whole days;
events later than the read time T (clock skew) are counted with their (> 1) growth factor rather
than dropped, which keeps S equal to the exact sum of Eq. 3 for any T.

This module is the pure-Python reference; ``streams/lua/apply_user_events.lua`` performs the
same update (and the same dedupe by arrival time) atomically in Redis. ``tests/test_decay.py``
holds this reference equal to Eq. 1–3 summed directly, and ``tests/test_store_lua.py`` holds the
script equal to this reference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from models.behaviors import BEHAVIOR_RANK

SECONDS_PER_DAY = 86400.0


def eq1_decay(days_ago: float, decay_per_day: float) -> float:
    """Eq. 1: ``decay = exp(−λ · daysAgo)``."""
    return math.exp(-decay_per_day * days_ago)


def brute_force_score(events: Iterable[tuple[str, float]], at: float,
                      weights: Mapping[str, float], decay_per_day: float) -> float:
    """Eq. 2–3 summed directly over ``(behavior, timestamp)`` pairs of one (user, item)."""
    return sum(weights[b] * eq1_decay((at - t) / SECONDS_PER_DAY, decay_per_day)
               for b, t in events)


def increment(weight: float, t: float, ref: float, decay_per_day: float) -> float:
    """Closed-form contribution of one event to the accumulator: ``w · exp(λ (t − r_u))``."""
    return weight * math.exp(decay_per_day * (t - ref) / SECONDS_PER_DAY)


def to_score(accumulator: float, ref: float, at: float, decay_per_day: float) -> float:
    """``S(u,i,T) = A(u,i) · exp(−λ (T − r_u))``."""
    return accumulator * math.exp(-decay_per_day * (at - ref) / SECONDS_PER_DAY)


@dataclass
class UserState:
    """Reference time and accumulators of one user (the reference twin of the Redis keys)."""

    ref: float | None = None
    acc: dict[str, float] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)
    #: newest event time per item (the Lua's ``P:last``)
    last: dict[str, float] = field(default_factory=dict)


class DecayedScores:
    """Reference implementation of the streaming score store (same rules as the Lua script).

    ``apply`` returns ``"applied"``, ``"duplicate"`` (event id seen before) and performs the
    rebase and the per-user cap exactly as the Lua script does. Seen ids are remembered with
    their *arrival* time ``now`` (never their event time); :meth:`apply_batch` forgets, after
    the batch, those of its users that arrived more than ``dedupe_window`` seconds before
    ``now`` and, beyond ``dedupe_max_ids`` per user, the earliest arrivals (ties: lowest id) —
    the Lua script's rule, call by call. Plain :meth:`apply` never forgets.
    """

    def __init__(self, weights: Mapping[str, float], decay_per_day: float,
                 rebase_bound: float = 50.0, max_items: int | None = None,
                 dedupe_window: float = math.inf, dedupe_max_ids: int | None = None) -> None:
        self.weights = dict(weights)
        self.decay_per_day = decay_per_day
        self.rebase_bound = rebase_bound
        self.max_items = max_items
        self.dedupe_window = dedupe_window
        self.dedupe_max_ids = dedupe_max_ids
        self.users: dict[str, UserState] = defaultdict(UserState)
        # dedupe is per user (the Lua script keeps a user's seen ids under the user's hash tag;
        # a redelivered event carries the same user): user -> event id -> arrival time
        self.seen: dict[str, dict[str, float]] = defaultdict(dict)

    def apply_batch(self, events: Iterable[tuple[str, str, str, str, float]], now: float,
                    ) -> list[str]:
        """``(event_id, user, item, behavior, t)`` events arriving together at ``now`` (one
        Lua call), then the forgetting rule for the users with an applied event."""
        statuses, touched = [], {}
        for event_id, user, item, behavior, t in events:
            status = self.apply(event_id, user, item, behavior, t, now)
            statuses.append(status)
            if status == "applied":
                touched[user] = None
        for user in touched:
            self.forget(user, now)
        return statuses

    def forget(self, user: str, now: float) -> None:
        """Drop ``user``'s seen ids older than the window (in arrival time), then the earliest
        arrivals beyond the count cap."""
        seen = self.seen[user]
        horizon = now - self.dedupe_window
        for event_id in [e for e, arrived in seen.items() if arrived < horizon]:
            del seen[event_id]
        if self.dedupe_max_ids is not None and len(seen) > self.dedupe_max_ids:
            ranked = sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))
            for event_id, _ in ranked[: len(seen) - self.dedupe_max_ids]:
                del seen[event_id]

    def apply(self, event_id: str, user: str, item: str, behavior: str, t: float,
              now: float = 0.0) -> str:
        seen = self.seen[user]
        if event_id in seen:
            return "duplicate"
        seen[event_id] = now
        state = self.users[user]
        if state.ref is None:
            state.ref = t
        elif self.decay_per_day * (t - state.ref) / SECONDS_PER_DAY > self.rebase_bound:
            factor = math.exp(-self.decay_per_day * (t - state.ref) / SECONDS_PER_DAY)
            state.acc = {i: a * factor for i, a in state.acc.items()}
            state.ref = t
        state.acc[item] = state.acc.get(item, 0.0) + increment(
            self.weights[behavior], t, state.ref, self.decay_per_day)
        previous = state.best.get(item)
        if previous is None or BEHAVIOR_RANK[behavior] > BEHAVIOR_RANK[previous]:
            state.best[item] = behavior
        if t > state.last.get(item, -math.inf):
            state.last[item] = t
        if self.max_items is not None and len(state.acc) > self.max_items:
            # keep the strongest N; ties broken like Redis ZSET order (score, then member)
            ranked = sorted(state.acc.items(), key=lambda kv: (kv[1], kv[0]))
            for dropped, _ in ranked[: len(ranked) - self.max_items]:
                del state.acc[dropped]
                state.best.pop(dropped, None)
                state.last.pop(dropped, None)
        return "applied"

    def scores(self, user: str, at: float) -> dict[str, float]:
        state = self.users.get(user)
        if state is None or state.ref is None:
            return {}
        return {i: to_score(a, state.ref, at, self.decay_per_day) for i, a in state.acc.items()}


def score_matrix(events: Iterable[tuple[str, str, str, float]], at: float,
                 weights: Mapping[str, float], decay_per_day: float,
                 ) -> dict[str, dict[str, float]]:
    """Eq. 3's user × item matrix at time ``at`` from ``(user, item, behavior, t)`` events.

    Offline evaluation and training build their targets with this, through the same closed-form
    path as the online store (no cap, no dedupe: offline logs carry no event ids).
    """
    store = DecayedScores(weights, decay_per_day)
    for n, (user, item, behavior, t) in enumerate(events):
        store.apply(str(n), user, item, behavior, t)
    return {user: store.scores(user, at) for user in store.users}
