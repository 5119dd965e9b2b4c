"""Redis score store: the closed-form decayed scores of DESIGN.md, applied by two Lua scripts.

Writes go through ``lua/apply_user_events.lua`` (one call per user per batch: dedupe, Eq. 1–3
update, rebase, cap, TTL) and ``lua/apply_global_events.lua`` (one call per batch: item
popularity and co-visitation counters). Both are loaded once and called by SHA (redis-py
``register_script``), pipelined so that one batch costs one round trip per script kind.

Reads turn accumulators into scores at a time ``T``: ``S = A · exp(−λ (T − r))``.

Global counters are updated only for events the user script applied, after it: a crash between
the two calls can under-count popularity/co-visitation for that batch (never double-count);
user scores stay exact either way, since the user script is the deduplicating one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources

import redis.asyncio as aioredis

from streams.config import DecaySettings
from streams.contract import BehaviorEvent

BEHAVIOR_RANK: dict[str, int] = {"view": 0, "favorite": 1, "cart": 2, "purchase": 3}
RANK_BEHAVIOR: dict[int, str] = {v: k for k, v in BEHAVIOR_RANK.items()}
GLOBAL_TAG = "{g}"
COVIS_PREFIX = f"ss:{GLOBAL_TAG}:cv:"


def _lua(name: str) -> str:
    return resources.files("streams").joinpath("lua", name).read_text(encoding="utf-8")


def user_keys(user_id: str) -> list[str]:
    """The five keys of one user, all under the user's hash tag (one Cluster slot)."""
    tag = "{" + user_id + "}"
    return [f"ss:{tag}:a", f"ss:{tag}:meta", f"ss:{tag}:beh", f"ss:{tag}:seen",
            f"ss:{tag}:recent"]


GLOBAL_KEYS = [f"ss:{GLOBAL_TAG}:pop", f"ss:{GLOBAL_TAG}:meta", f"ss:{GLOBAL_TAG}:cvkeys"]


@dataclass
class BatchResult:
    """What one batch did: counts, and per user the newest event time applied."""

    applied: int = 0
    duplicates: int = 0
    users: dict[str, float] = field(default_factory=dict)


class ScoreStore:
    """Async access to the decayed scores, popularity and co-visitation counters in Redis."""

    def __init__(self, client: aioredis.Redis, decay: DecaySettings,
                 covisit_fanout: int = 3, covisit_cap: int = 100) -> None:
        self.redis = client
        self.decay = decay
        self.lam = decay.decay_per_second
        self.covisit_fanout = covisit_fanout
        self.covisit_cap = covisit_cap
        self._user_script = client.register_script(_lua("apply_user_events.lua"))
        self._global_script = client.register_script(_lua("apply_global_events.lua"))

    @classmethod
    def from_url(cls, url: str, decay: DecaySettings, **kwargs: int) -> ScoreStore:
        return cls(aioredis.Redis.from_url(url, decode_responses=True), decay, **kwargs)

    async def close(self) -> None:
        await self.redis.aclose()

    # --- writes ---------------------------------------------------------------------------

    def _user_args(self, events: list[BehaviorEvent]) -> list[str | float | int]:
        d = self.decay
        args: list[str | float | int] = [repr(self.lam), d.rebase_bound, d.max_items_per_user,
                                         d.ttl_seconds, d.dedupe_ttl_seconds,
                                         self.covisit_fanout, len(events)]
        for e in events:
            location = f"{e.lat!r},{e.lon!r}" if e.lat is not None else ""
            args += [e.event_id, e.item_id, repr(d.weights[e.behavior]),
                     BEHAVIOR_RANK[e.behavior], repr(e.timestamp), location]
        return args

    async def apply_batch(self, events: list[BehaviorEvent]) -> BatchResult:
        """Apply a batch atomically per user; duplicates (by ``event_id``) change nothing."""
        result = BatchResult()
        if not events:
            return result
        by_user: dict[str, list[BehaviorEvent]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        async with self.redis.pipeline(transaction=False) as pipe:
            for user, user_events in by_user.items():
                await self._user_script(keys=user_keys(user), args=self._user_args(user_events),
                                        client=pipe)
            replies = await pipe.execute()
        popularity: list[str | float] = []
        covisits: list[str | float] = []
        for (user, user_events), reply in zip(by_user.items(), replies, strict=True):
            for k, event in enumerate(user_events):
                status, partners = int(reply[2 * k]), reply[2 * k + 1]
                if not status:
                    result.duplicates += 1
                    continue
                result.applied += 1
                weight = self.decay.weights[event.behavior]
                popularity += [event.item_id, repr(weight), repr(event.timestamp)]
                for other in partners.split("\n") if partners else ():
                    covisits += [event.item_id, other, repr(weight), repr(event.timestamp)]
                if event.timestamp > result.users.get(user, -math.inf):
                    result.users[user] = event.timestamp
        if popularity:
            await self._global_script(
                keys=GLOBAL_KEYS,
                args=[repr(self.lam), self.decay.rebase_bound, self.covisit_cap,
                      self.decay.ttl_seconds, COVIS_PREFIX, len(popularity) // 3, *popularity,
                      len(covisits) // 4, *covisits])
        return result

    # --- reads ----------------------------------------------------------------------------

    def _factor(self, ref: float | None, at: float) -> float:
        return 0.0 if ref is None else math.exp(-self.lam * (at - ref))

    async def user_top(self, user_id: str, at: float, n: int | None = None,
                       ) -> list[tuple[str, float]]:
        """The user's strongest items with their decayed scores S(u,i,T), strongest first."""
        keys = user_keys(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(keys[0], 0, -1 if n is None else n - 1, withscores=True)
            pipe.hget(keys[1], "ref")
            pairs, ref = await pipe.execute()
        factor = self._factor(None if ref is None else float(ref), at)
        return [(item, acc * factor) for item, acc in pairs]

    async def user_scores(self, user_id: str, at: float) -> dict[str, float]:
        return dict(await self.user_top(user_id, at))

    async def user_profile(self, user_id: str, at: float, n: int = 50) -> dict:
        """Top items with scores, strongest behaviour per item, location and last event time."""
        keys = user_keys(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(keys[0], 0, n - 1, withscores=True)
            pipe.hgetall(keys[1])
            pipe.hgetall(keys[2])
            pairs, meta, behaviors = await pipe.execute()
        factor = self._factor(float(meta["ref"]) if "ref" in meta else None, at)
        return {
            "scores": {item: acc * factor for item, acc in pairs},
            "behaviors": {item: RANK_BEHAVIOR[int(rank)] for item, rank in behaviors.items()},
            "lat": float(meta["lat"]) if "lat" in meta else None,
            "lon": float(meta["lon"]) if "lon" in meta else None,
            "last_event_time": float(meta["last_t"]) if "last_t" in meta else None,
        }

    async def _global_ref(self) -> float | None:
        ref = await self.redis.hget(GLOBAL_KEYS[1], "ref")
        return None if ref is None else float(ref)

    async def trending(self, at: float, n: int = 50) -> list[tuple[str, float]]:
        """Items by decayed popularity at ``at`` (same closed form, global reference)."""
        ref = await self._global_ref()
        pairs = await self.redis.zrevrange(GLOBAL_KEYS[0], 0, n - 1, withscores=True)
        factor = self._factor(ref, at)
        return [(item, acc * factor) for item, acc in pairs]

    async def popularity_of(self, items: list[str], at: float) -> dict[str, float]:
        if not items:
            return {}
        ref = await self._global_ref()
        values = await self.redis.zmscore(GLOBAL_KEYS[0], items)
        factor = self._factor(ref, at)
        return {i: (v or 0.0) * factor for i, v in zip(items, values, strict=True)}

    async def max_popularity(self, at: float) -> float:
        top = await self.trending(at, 1)
        return top[0][1] if top else 0.0

    async def covisited(self, items: list[str], n: int = 20,
                        ) -> dict[str, list[tuple[str, float]]]:
        """For each item, its co-visited items by (undecayed-at-read) strength, strongest first.

        Strengths share the global reference, so they compare across items without rescaling.
        """
        if not items:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.zrevrange(COVIS_PREFIX + item, 0, n - 1, withscores=True)
            replies = await pipe.execute()
        return dict(zip(items, replies, strict=True))
