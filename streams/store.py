"""Redis score store: the closed-form decayed scores of docs/design.md, applied by two Lua scripts.

Writes go through ``lua/apply_user_events.lua`` (one call per user shard per batch: dedupe,
Eq. 1–3 update, rebase, cap, TTL) and ``lua/apply_global_events.lua`` (one call per batch: item
popularity and co-visitation counters). Both are loaded once and called by SHA (redis-py
``register_script``), pipelined so that one batch costs one round trip per script kind.

Reads turn accumulators into scores at a time ``T``: ``S = A · exp(−λ (T − r))``.

Exactly once under crashes and redeliveries:

- the user script dedupes by ``event_id`` per user, remembering ids by *arrival* time (the
  Redis server clock unless ``now`` is given) for ``dedupe_ttl_seconds`` and at most
  ``dedupe_max_ids`` per user, so a redelivered event of any event-time age changes nothing;
- in the same atomic step it records the global increments of the events it applied as a
  *pending entry* of its shard (``ss:{s<k>}:pending``); the global script counts an entry at most
  once (its id goes into ``ss:{g}:applied``), and only then is the entry deleted. A worker that
  dies between the calls leaves its entries pending; the next call on that shard (the
  redelivered batch touches the same shards) or the ingest worker's timer
  (:meth:`ScoreStore.drain_pending`) returns them once they are older than
  :data:`PENDING_GRACE_SECONDS`, and they are counted then — popularity and co-visitation are
  neither lost nor counted twice.
- the applied set stays small: a deleted entry's id is forgotten :data:`FORGET_AFTER_SECONDS`
  later (the next global call carries it); only ids of a worker that died between counting and
  telling stay, for the dedupe window. The one interleaving left uncovered needs two callers
  each stalled longer than the grace period between their two scripts (one reading the other's
  entry as a leftover just before its deletion).
"""

from __future__ import annotations

import math
import time
import uuid
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass, field
from importlib import resources

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from models.behaviors import BEHAVIOR_RANK
from streams.config import DecaySettings, Settings
from streams.contract import BehaviorEvent
from streams.security import redis_client_kwargs

RANK_BEHAVIOR: dict[int, str] = {v: k for k, v in BEHAVIOR_RANK.items()}
RANK_TEXT: dict[str, str] = {k: str(v) for k, v in BEHAVIOR_RANK.items()}
#: Separators of the packed script arguments (ASCII RS/US; the contract refuses control
#: characters in identifiers, so they never occur inside a field).
RS, US = "\x1e", "\x1f"
GLOBAL_TAG = "{g}"
COVIS_PREFIX = f"ss:{GLOBAL_TAG}:cv:"


def _lua(name: str) -> str:
    return resources.files("streams").joinpath("lua", name).read_text(encoding="utf-8")


#: Users are spread over this many shards; a shard's users share one hash tag (one Cluster
#: slot), so one Lua call per shard covers a batch. Fixed for the life of the data.
USER_SHARDS = 64


def shard_prefix(user_id: str) -> str:
    """``ss:{s<shard>}:`` with shard = crc32(user) mod :data:`USER_SHARDS`."""
    return f"ss:{{s{zlib.crc32(user_id.encode()) % USER_SHARDS}}}:"


def user_keys(user_id: str) -> list[str]:
    """The six keys of one user (scores, meta, behaviours, last touch per item, seen ids,
    recent items)."""
    prefix = shard_prefix(user_id) + user_id
    return [f"{prefix}:a", f"{prefix}:meta", f"{prefix}:beh", f"{prefix}:last",
            f"{prefix}:seen", f"{prefix}:recent"]


GLOBAL_KEYS = [f"ss:{GLOBAL_TAG}:pop", f"ss:{GLOBAL_TAG}:meta", f"ss:{GLOBAL_TAG}:cvkeys"]
#: Pending-entry ids already counted by the global script (see the module docstring).
GLOBAL_APPLIED_KEY = f"ss:{GLOBAL_TAG}:applied"
#: A shard's pending entry older than this is taken to be left by a dead caller and is counted
#: by whoever touches the shard next (younger ones belong to a caller still at work; counting
#: them twice would be harmless, only wasteful).
PENDING_GRACE_SECONDS = 30.0
#: A deleted entry's id stays in the applied set this much longer, so that a caller that read
#: the entry as a leftover just before it was deleted still finds it counted.
FORGET_AFTER_SECONDS = 2 * PENDING_GRACE_SECONDS


def pending_key(prefix: str) -> str:
    """The pending-entry hash of a shard (``prefix`` from :func:`shard_prefix`)."""
    return prefix + "pending"


@dataclass(frozen=True)
class PendingEntry:
    """Global increments recorded by the user script: id, packed popularity, packed pairs."""

    shard: str
    entry_id: str
    popularity: str
    covisits: str


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
        self._lam_text = repr(self.lam)
        self.covisit_fanout = covisit_fanout
        self.covisit_cap = covisit_cap
        #: seconds after deleting an entry before its id leaves the applied set
        self.forget_after = FORGET_AFTER_SECONDS
        self._released: deque[tuple[float, str]] = deque()
        self._user_script = client.register_script(_lua("apply_user_events.lua"))
        self._global_script = client.register_script(_lua("apply_global_events.lua"))
        self._profiles_script = client.register_script(_lua("read_profiles.lua"))
        self._recall_script = client.register_script(_lua("read_recall.lua"))

    @classmethod
    def from_url(cls, url: str, decay: DecaySettings, **kwargs: int) -> ScoreStore:
        return cls(aioredis.Redis.from_url(url, decode_responses=True), decay, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: int) -> ScoreStore:
        """The store at ``settings.redis``, with its ACL credentials and TLS files
        (:func:`streams.security.redis_client_kwargs`)."""
        client = aioredis.Redis.from_url(settings.redis, decode_responses=True,
                                         **redis_client_kwargs(settings))
        return cls(client, settings.decay, **kwargs)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _pipelined_script(self, script: AsyncScript,
                                calls: list[tuple[list[str], list[str | float | int]]],
                                ) -> list:
        """Run ``script`` once per ``(keys, args)`` in one pipelined round trip; the replies in
        order.

        redis-py's ``Script`` on a pipeline first asks ``SCRIPT EXISTS`` (one more round trip
        per batch); here the ``EVALSHA`` calls go out directly and only calls answered
        ``NOSCRIPT`` (a restarted or flushed server: the script did not run) are sent again
        after ``SCRIPT LOAD``.
        """
        replies: list = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe: Pipeline
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in todo:
                    keys, args = calls[k]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                answers = await pipe.execute(raise_on_error=False)
            missing = []
            for k, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and attempt == 0:
                    missing.append(k)
                elif isinstance(answer, ResponseError):
                    raise answer
                else:
                    replies[k] = answer
            if not missing:
                break
            script.sha = await self.redis.script_load(script.script)
            todo = missing
        return replies

    # --- writes ---------------------------------------------------------------------------

    def _user_args(self, events: list[BehaviorEvent], now: float | None, entry_id: str,
                   ) -> list[str | float | int]:
        d = self.decay
        packed = RS.join(US.join((e.user_id, e.event_id, e.item_id, repr(d.weights[e.behavior]),
                                  RANK_TEXT[e.behavior], repr(e.timestamp),
                                  f"{e.lat!r},{e.lon!r}" if e.lat is not None else ""))
                         for e in events)
        return [self._lam_text, d.rebase_bound, d.max_items_per_user, d.ttl_seconds,
                d.dedupe_ttl_seconds, self.covisit_fanout, packed,
                "" if now is None else repr(now), d.dedupe_max_ids, entry_id,
                repr(PENDING_GRACE_SECONDS)]

    async def apply_batch(self, events: list[BehaviorEvent], now: float | None = None,
                          ) -> BatchResult:
        """Apply a batch atomically per user; duplicates (by ``event_id``) change nothing.

        ``now``: the arrival time the seen ids are kept by (default: the Redis server clock;
        tests and tools that replay history may pass their own). Then the batch's global
        increments, and any a dead caller left pending on the same shards, are counted once.
        """
        result, entries = await self.apply_users(events, now)
        await self.apply_globals(entries, now)
        return result

    async def apply_users(self, events: list[BehaviorEvent], now: float | None = None,
                          ) -> tuple[BatchResult, list[PendingEntry]]:
        """The first step of :meth:`apply_batch`: user scores, seen ids and pending entries."""
        result = BatchResult()
        if not events:
            return result, []
        by_shard: dict[str, list[BehaviorEvent]] = defaultdict(list)
        for event in events:
            by_shard[shard_prefix(event.user_id)].append(event)
        batch = uuid.uuid4().hex[:16]
        replies = await self._pipelined_script(
            self._user_script, [([prefix], self._user_args(shard_events, now, batch + prefix))
                                for prefix, shard_events in by_shard.items()])
        entries: list[PendingEntry] = []
        for (prefix, shard_events), reply in zip(by_shard.items(), replies, strict=True):
            for event, status in zip(shard_events, reply, strict=False):
                if not int(status):
                    result.duplicates += 1
                    continue
                result.applied += 1
                user = event.user_id
                if event.timestamp > result.users.get(user, -math.inf):
                    result.users[user] = event.timestamp
            tail = reply[len(shard_events):]
            entries.extend(PendingEntry(prefix, *tail[k:k + 3]) for k in range(0, len(tail), 3))
        return result, entries

    async def drain_pending(self, now: float | None = None) -> int:
        """Count every shard's pending entries older than :data:`PENDING_GRACE_SECONDS` (left
        by a caller that died between the scripts, whose shards no later batch touched); the
        ingest worker calls this on a timer. Returns how many entries were counted."""
        prefixes = [f"ss:{{s{k}}}:" for k in range(USER_SHARDS)]
        replies = await self._pipelined_script(
            self._user_script, [([prefix], self._user_args([], now, "")) for prefix in prefixes])
        entries = [PendingEntry(prefix, *reply[k:k + 3])
                   for prefix, reply in zip(prefixes, replies, strict=True)
                   for k in range(0, len(reply), 3)]
        await self.apply_globals(entries, now)
        return len(entries)

    async def apply_globals(self, entries: list[PendingEntry], now: float | None = None) -> None:
        """The second step: count pending entries in popularity and co-visitation (each entry
        at most once, whoever calls), then delete them from their shards."""
        if not entries:
            return
        await self.count_globals(entries, now)
        await self.release_pending(entries)

    async def count_globals(self, entries: list[PendingEntry], now: float | None = None) -> None:
        """Run the global script on ``entries`` (those counted before are skipped there). Also
        hands it the ids of entries deleted at least :attr:`forget_after` seconds ago, which it
        forgets: the applied-id set holds only entries not yet known to be deleted (plus, for
        the dedupe window, those of a caller that died before telling)."""
        if not entries:
            return
        cutoff = time.monotonic() - self.forget_after
        forget: list[str] = []
        while self._released and self._released[0][0] <= cutoff:
            forget.append(self._released.popleft()[1])
        args: list[str | float | int] = [
            self._lam_text, self.decay.rebase_bound, self.covisit_cap, self.decay.ttl_seconds,
            COVIS_PREFIX, "" if now is None else repr(now), self.decay.dedupe_ttl_seconds,
            US.join(forget)]
        for entry in entries:
            args += [entry.entry_id, entry.popularity, entry.covisits]
        try:
            await self._global_script(keys=[*GLOBAL_KEYS, GLOBAL_APPLIED_KEY], args=args)
        except BaseException:
            self._released.extendleft((cutoff, entry_id) for entry_id in reversed(forget))
            raise

    async def release_pending(self, entries: list[PendingEntry]) -> None:
        """Delete counted entries from their shards' pending hashes."""
        by_shard: dict[str, list[str]] = defaultdict(list)
        for entry in entries:
            by_shard[entry.shard].append(entry.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, ids in by_shard.items():
                pipe.hdel(pending_key(shard), *ids)
            await pipe.execute()
        released = time.monotonic()
        self._released.extend((released, entry.entry_id) for entry in entries)

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

    async def user_profiles(self, user_ids: list[str], at: float, n: int = 50) -> list[dict]:
        """For each user (one pipelined round trip for all, one script call per user shard):
        top items with scores S(u,i,T), strongest behaviour and newest event time per item,
        location and last event time."""
        by_shard: dict[str, list[str]] = defaultdict(list)
        for user_id in user_ids:
            by_shard[shard_prefix(user_id)].append(user_id)
        replies = await self._pipelined_script(
            self._profiles_script, [([prefix], [n, *users]) for prefix, users in
                                    by_shard.items()])
        raw: dict[str, tuple[list, list, list, list]] = {}
        for users, reply in zip(by_shard.values(), replies, strict=True):
            for k, user_id in enumerate(users):
                raw[user_id] = (reply[4 * k], reply[4 * k + 1], reply[4 * k + 2],
                                reply[4 * k + 3])
        profiles = []
        for user_id in user_ids:
            pairs, meta_flat, beh_flat, last_flat = raw[user_id]
            meta = dict(zip(meta_flat[::2], meta_flat[1::2], strict=True))
            factor = self._factor(float(meta["ref"]) if "ref" in meta else None, at)
            profiles.append({
                "scores": {item: float(acc) * factor
                           for item, acc in zip(pairs[::2], pairs[1::2], strict=True)},
                "behaviors": {item: RANK_BEHAVIOR[int(rank)]
                              for item, rank in zip(beh_flat[::2], beh_flat[1::2], strict=True)},
                "last_touch": {item: float(t)
                               for item, t in zip(last_flat[::2], last_flat[1::2], strict=True)},
                "lat": float(meta["lat"]) if "lat" in meta else None,
                "lon": float(meta["lon"]) if "lon" in meta else None,
                "last_event_time": float(meta["last_t"]) if "last_t" in meta else None,
            })
        return profiles

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

    async def recall_sources(self, items: list[str], at: float, covisit_n: int = 20,
                             trending_n: int = 50,
                             ) -> tuple[dict[str, list[tuple[str, float]]],
                                        list[tuple[str, float]]]:
        """:meth:`covisited` of ``items`` and :meth:`trending` at ``at``, in one round trip
        (one script call; the same values as the two methods)."""
        (reply,) = await self._pipelined_script(
            self._recall_script, [(GLOBAL_KEYS[:2], [COVIS_PREFIX, covisit_n, trending_n,
                                                     *items])])
        ref, popular, *neighbours = reply
        factor = self._factor(None if ref is None else float(ref), at)
        trending = [(item, float(acc) * factor)
                    for item, acc in zip(popular[::2], popular[1::2], strict=True)]
        covisits = {item: list(zip(flat[::2], map(float, flat[1::2]), strict=True))
                    for item, flat in zip(items, neighbours, strict=True)}
        return covisits, trending
