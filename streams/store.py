"""Redis score store: the closed-form decayed scores of docs/design.md, applied by two Lua scripts.

Writes go through ``lua/apply_user_events.lua`` (dedupe, Eq. 1–3 update, rebase, cap, TTL) and
``lua/apply_global_events.lua`` (item popularity and co-visitation counters). On a single Redis
each is one call per batch covering every shard the batch touches, and the global call also
deletes the pending entries it counted: two calls per batch. On Redis Cluster each call stays
inside one slot, so there is one call per user shard and per global shard (pipelined, grouped
by node by the cluster client), then ``lua/release_pending.lua`` per user shard. All are called
by SHA (``EVALSHA``, loaded again on ``NOSCRIPT``), so one batch costs one round trip per step.

Key layout (Redis Cluster ready): a user's keys carry the hash tag of the user's shard
(``{s<n>}``); an item's popularity and co-visitation row carry the tag of the item's global
shard (``{g<k>}``, k = crc32(item) mod ``DecaySettings.global_shards``), each global shard with
its own reference time. Reads merge the shards: trending is the top of the per-shard tops,
co-visitation strengths are brought to one reference. The client comes from
:mod:`streams.redis_client` (a cluster client when the server runs in cluster mode).

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

import hashlib
import math
import time
import uuid
import zlib
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from models.behaviors import BEHAVIOR_RANK
from streams.config import DecaySettings, Settings
from streams.contract import BehaviorEvent
from streams.redis_client import AsyncClient, AsyncRedisCluster, async_client
from streams.security import redis_client_kwargs

RANK_BEHAVIOR: dict[int, str] = {v: k for k, v in BEHAVIOR_RANK.items()}
RANK_TEXT: dict[str, str] = {k: str(v) for k, v in BEHAVIOR_RANK.items()}
#: Separators of the packed script arguments (ASCII RS/US; the contract refuses control
#: characters in identifiers, so they never occur inside a field).
RS, US = "\x1e", "\x1f"
#: Separates the shards' packed events in one user-script call (ASCII FS).
FS = "\x1c"


def _lua(name: str) -> str:
    return resources.files("streams").joinpath("lua", name).read_text(encoding="utf-8")


@dataclass
class LuaScript:
    """A script's text and SHA1 (what ``EVALSHA`` names; the same on every node)."""

    text: str
    sha: str

    @classmethod
    def named(cls, name: str) -> LuaScript:
        text = _lua(name)
        return cls(text, hashlib.sha1(text.encode()).hexdigest())


#: Users are spread over this many shards; a shard's users share one hash tag (one Cluster
#: slot), so one Lua call per shard covers a batch. Fixed for the life of the data.
USER_SHARDS = 64


#: How many users' and items' shards are memoised (a batch names the same ones many times).
SHARD_MEMO_SIZE = 1 << 17


@lru_cache(maxsize=SHARD_MEMO_SIZE)
def shard_prefix(user_id: str) -> str:
    """``ss:{s<shard>}:`` with shard = crc32(user) mod :data:`USER_SHARDS` (memoised)."""
    return f"ss:{{s{zlib.crc32(user_id.encode()) % USER_SHARDS}}}:"


def user_keys(user_id: str) -> list[str]:
    """The six keys of one user (scores, meta, behaviours, last touch per item, seen ids,
    recent items)."""
    prefix = shard_prefix(user_id) + user_id
    return [f"{prefix}:a", f"{prefix}:meta", f"{prefix}:beh", f"{prefix}:last",
            f"{prefix}:seen", f"{prefix}:recent"]


@lru_cache(maxsize=SHARD_MEMO_SIZE)
def global_shard(item_id: str, shards: int) -> int:
    """The global shard of an item: crc32(item) mod ``shards`` (memoised)."""
    return zlib.crc32(item_id.encode()) % shards


def global_keys(shard: int) -> list[str]:
    """Popularity ZSET, meta HASH (the shard's reference ``ref``) and co-visitation key SET of
    one global shard."""
    return [f"ss:{{g{shard}}}:pop", f"ss:{{g{shard}}}:meta", f"ss:{{g{shard}}}:cvkeys"]


def covis_prefix(shard: int) -> str:
    """Prefix of the co-visitation rows of a global shard's items (``+ item``)."""
    return f"ss:{{g{shard}}}:cv:"


def covis_key(item_id: str, shards: int) -> str:
    """The co-visitation row C(item, ·) (lives in the item's global shard)."""
    return covis_prefix(global_shard(item_id, shards)) + item_id


def global_applied_key(shard: int) -> str:
    """Pending-entry ids already counted on a global shard (see the module docstring)."""
    return f"ss:{{g{shard}}}:applied"


#: A shard's pending entry older than this is taken to be left by a dead caller and is counted
#: by whoever touches the shard next (younger ones belong to a caller still at work; counting
#: them twice would be harmless, only wasteful).
PENDING_GRACE_SECONDS = 30.0
#: A deleted entry's id stays in the applied set this much longer, so that a caller that read
#: the entry as a leftover just before it was deleted still finds it counted.
FORGET_AFTER_SECONDS = 2 * PENDING_GRACE_SECONDS


#: A user's keys (other than the seen ids) get their TTL again only when their last refresh is
#: this fraction of the TTL old (or a key was just created): one EXPIRE per key per
#: ``ttl * TTL_REFRESH_FRACTION`` seconds instead of per batch, and keys still live at least
#: ``(1 - TTL_REFRESH_FRACTION) * ttl`` seconds after the user's last event.
TTL_REFRESH_FRACTION = 0.01


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


def _ids_by_shard(entries: list[PendingEntry]) -> dict[str, list[str]]:
    """Entry ids grouped by the user shard (prefix) whose pending hash holds them."""
    by_shard: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_shard[entry.shard].append(entry.entry_id)
    return by_shard


@dataclass
class BatchResult:
    """What one batch did: counts, and per user the newest event time applied."""

    applied: int = 0
    duplicates: int = 0
    users: dict[str, float] = field(default_factory=dict)


class ScoreStore:
    """Async access to the decayed scores, popularity and co-visitation counters in Redis."""

    def __init__(self, client: AsyncClient | Callable[[], AsyncClient], decay: DecaySettings,
                 covisit_fanout: int = 3, covisit_cap: int = 100) -> None:
        """``client``: a Redis client, or a factory called on first use (:meth:`from_url`:
        learning the server's mode needs the server)."""
        self._client: AsyncClient | None = None if callable(client) else client
        self._make_client = client if callable(client) else None
        self.decay = decay
        self.global_shards = decay.global_shards
        self.lam = decay.decay_per_second
        self._lam_text = repr(self.lam)
        self._ttl_refresh_text = repr(decay.ttl_seconds * TTL_REFRESH_FRACTION)
        self._weight_text = {behavior: repr(w) for behavior, w in decay.weights.items()}
        self.covisit_fanout = covisit_fanout
        self.covisit_cap = covisit_cap
        #: seconds after deleting an entry before its id leaves the applied set
        self.forget_after = FORGET_AFTER_SECONDS
        self._released: deque[tuple[float, str]] = deque()
        self._user_script = LuaScript.named("apply_user_events.lua")
        self._global_script = LuaScript.named("apply_global_events.lua")
        self._release_script = LuaScript.named("release_pending.lua")
        self._profiles_script = LuaScript.named("read_profiles.lua")
        self._recall_script = LuaScript.named("read_recall.lua")

    @classmethod
    def from_url(cls, url: str, decay: DecaySettings, wait: float = 0.0,
                 **kwargs: int) -> ScoreStore:
        """A store on the Redis (or Redis Cluster: any node) at ``url``. The client is made on
        first use (or :meth:`connect`): asking the server its mode
        (:func:`streams.redis_client.is_cluster`, again for up to ``wait`` seconds) raises
        redis-py's ``ConnectionError``/``TimeoutError`` while it cannot be reached, which the
        workers retry like any lost connection (the next use asks again)."""
        return cls(lambda: async_client(url, wait, decode_responses=True), decay, **kwargs)

    def connect(self) -> AsyncClient:
        """The client, made now if not yet (blocking: asks the server its mode)."""
        if self._client is None:
            assert self._make_client is not None
            self._client = self._make_client()
        return self._client

    @property
    def redis(self) -> AsyncClient:
        return self.connect()

    def _groups(self, shards: list[str]) -> list[list[str]]:
        """The shards of each write-script call: all in one call on a single Redis, one call
        per shard on Redis Cluster (a script's keys must share one slot there)."""
        if isinstance(self.redis, AsyncRedisCluster):
            return [[shard] for shard in shards]
        return [shards] if shards else []

    @classmethod
    def from_settings(cls, settings: Settings, wait: float = 0.0, **kwargs: int) -> ScoreStore:
        """:meth:`from_url` for ``settings.redis``, with its ACL credentials and TLS files
        (:func:`streams.security.redis_client_kwargs`, also used to ask the server's mode)."""
        security = redis_client_kwargs(settings)
        return cls(lambda: async_client(settings.redis, wait, decode_responses=True,
                                        **security), settings.decay, **kwargs)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _pipelined_script(self, script: LuaScript,
                                calls: list[tuple[list[str], list[str | float | int]]],
                                ) -> list:
        """Run ``script`` once per ``(keys, args)`` in one pipelined round trip; the replies in
        order.

        redis-py's ``Script`` on a pipeline first asks ``SCRIPT EXISTS`` (one more round trip
        per batch); here the ``EVALSHA`` calls go out directly and only calls answered
        ``NOSCRIPT`` (a restarted or flushed server or cluster node: the script did not run)
        are sent again after ``SCRIPT LOAD`` (on every primary of a cluster).
        """
        replies: list = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe: Pipeline
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in todo:
                    keys, args = calls[k]
                    # execute_command: redis-py's cluster pipeline blocks ``evalsha`` but
                    # routes a raw EVALSHA by its keys (one slot per call)
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
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
            script.sha = await self.redis.script_load(script.text)  # every primary
            todo = missing
        return replies

    # --- writes ---------------------------------------------------------------------------

    def _user_args(self, shards: list[list[BehaviorEvent]], now: float | None,
                   entry_base: str) -> list[str | float | int]:
        """The user script's arguments for one call: ``shards``, the events of each shard of
        the call (in key order); a shard's pending entry is ``entry_base`` + its prefix."""
        d = self.decay
        weights = self._weight_text
        packed = FS.join(
            RS.join(US.join((e.user_id, e.event_id, e.item_id, weights[e.behavior],
                             RANK_TEXT[e.behavior], repr(e.timestamp),
                             f"{e.lat!r},{e.lon!r}" if e.lat is not None else ""))
                    for e in events)
            for events in shards)
        return [self._lam_text, d.rebase_bound, d.max_items_per_user, d.ttl_seconds,
                d.dedupe_ttl_seconds, self.covisit_fanout, packed,
                "" if now is None else repr(now), d.dedupe_max_ids, entry_base,
                repr(PENDING_GRACE_SECONDS), self._ttl_refresh_text]

    async def _run_user_script(self, by_shard: dict[str, list[BehaviorEvent]],
                               now: float | None, entry_base: str) -> list[list]:
        """The user script over ``by_shard`` (prefix → its events), in as few calls as the
        server allows (:meth:`_groups`); each shard's reply, in ``by_shard`` order."""
        calls = [(group, self._user_args([by_shard[p] for p in group], now, entry_base))
                 for group in self._groups(list(by_shard))]
        replies = await self._pipelined_script(self._user_script, calls)
        return [shard_reply for reply in replies for shard_reply in reply]

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
        replies = await self._run_user_script(by_shard, now, uuid.uuid4().hex[:16])
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
        replies = await self._run_user_script({prefix: [] for prefix in prefixes}, now, "")
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
        if not await self.count_globals(entries, now, release=True):
            await self.release_pending(entries)

    async def count_globals(self, entries: list[PendingEntry], now: float | None = None,
                            release: bool = False) -> bool:
        """Run the global script on ``entries`` (those counted before are skipped there). Also
        hands it the ids of entries deleted at least :attr:`forget_after` seconds ago, which it
        forgets: the applied-id set holds only entries not yet known to be deleted (plus, for
        the dedupe window, those of a caller that died before telling).

        ``release``: on a single Redis, also delete the entries from their shards' pending
        hashes in the same atomic call (what :meth:`release_pending` does); returns whether it
        did (never on Redis Cluster, where the keys span slots)."""
        if not entries:
            return False
        cutoff = time.monotonic() - self.forget_after
        forget: list[str] = []
        while self._released and self._released[0][0] <= cutoff:
            forget.append(self._released.popleft()[1])
        # each entry's records go to the global shards of their items: popularity of i to
        # i's shard, a co-visit (a, b) as C(a,b) to a's shard and C(b,a) to b's; every shard
        # remembers the entry id on its own, so a retry after a failure between shards counts
        # only the shards that had not
        shard_of = self._global_shard_of
        per_shard: dict[int, list[tuple[str, list[str], list[str]]]] = defaultdict(list)
        for entry in entries:
            pops: dict[int, list[str]] = defaultdict(list)
            pairs: dict[int, list[str]] = defaultdict(list)
            for record in entry.popularity.split(RS) if entry.popularity else ():
                pops[shard_of(record.split(US, 1)[0])].append(record)
            for record in entry.covisits.split(RS) if entry.covisits else ():
                a, b, tail = record.split(US, 2)
                pairs[shard_of(a)].append(record)
                pairs[shard_of(b)].append(f"{b}{US}{a}{US}{tail}")
            for shard in pops.keys() | pairs.keys():
                per_shard[shard].append((entry.entry_id, pops[shard], pairs[shard]))
        # forgotten ids may sit in any shard's applied set: then every shard is called
        shards = range(self.global_shards) if forget else sorted(per_shard)
        calls = []
        for group in self._groups([str(shard) for shard in shards]):
            keys: list[str] = []
            triples: list[str | float | int] = []
            counts = []
            for shard in map(int, group):
                keys += [*global_keys(shard), global_applied_key(shard)]
                mine = per_shard.get(shard, ())
                counts.append(str(len(mine)))
                for entry_id, pops_k, pairs_k in mine:
                    triples += [entry_id, RS.join(pops_k), RS.join(pairs_k)]
            calls.append((keys, [
                self._lam_text, self.decay.rebase_bound, self.covisit_cap, self.decay.ttl_seconds,
                US.join(covis_prefix(int(shard)) for shard in group),
                "" if now is None else repr(now), self.decay.dedupe_ttl_seconds, US.join(forget),
                US.join(counts), *triples]))
        release = release and len(calls) == 1 and not isinstance(self.redis, AsyncRedisCluster)
        if release:
            by_shard = _ids_by_shard(entries)
            keys, args = calls[0]
            calls[0] = ([*keys, *map(pending_key, by_shard)],
                        [*args, *map(US.join, by_shard.values())])
        try:
            await self._pipelined_script(self._global_script, calls)
        except BaseException:
            self._released.extendleft((cutoff, entry_id) for entry_id in reversed(forget))
            raise
        if release:
            released = time.monotonic()
            self._released.extend((released, entry.entry_id) for entry in entries)
        return release

    async def release_pending(self, entries: list[PendingEntry]) -> None:
        """Delete counted entries from their shards' pending hashes."""
        by_shard = _ids_by_shard(entries)
        await self._pipelined_script(
            self._release_script,
            [([pending_key(shard) for shard in group], [US.join(by_shard[shard])
                                                         for shard in group])
             for group in self._groups(list(by_shard))])
        released = time.monotonic()
        self._released.extend((released, entry.entry_id) for entry in entries)

    def _global_shard_of(self, item_id: str) -> int:
        """:func:`global_shard` with this store's number of global shards."""
        return global_shard(item_id, self.global_shards)

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

    async def _global_refs(self) -> list[float | None]:
        """Each global shard's reference time (``None`` for a shard never written)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(self.global_shards):
                pipe.hget(global_keys(shard)[1], "ref")
            refs = await pipe.execute()
        return [None if ref is None else float(ref) for ref in refs]

    def _merge_trending(self, tops: list[tuple[float | None, list[tuple[str, float]]]],
                        at: float, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items at ``at`` from each shard's (ref, top-n); an item lives
        in one shard, so the top of the per-shard tops is the global top. Ties: higher id
        first (ZREVRANGE's order)."""
        merged = [(item, acc * self._factor(ref, at)) for ref, pairs in tops
                  for item, acc in pairs]
        merged.sort(key=lambda pair: pair[0], reverse=True)
        merged.sort(key=lambda pair: pair[1], reverse=True)
        return merged[:n]

    def _rescale_covisits(self, refs: list[float | None],
                          rows: dict[str, list[tuple[str, float]]],
                          ) -> dict[str, list[tuple[str, float]]]:
        """Bring each item's row from its shard's reference to the newest reference of all
        shards, so strengths compare across items."""
        known = [ref for ref in refs if ref is not None]
        if not known:
            return rows
        common = max(known)
        out = {}
        for item, row in rows.items():
            ref = refs[self._global_shard_of(item)]
            factor = 1.0 if ref is None else self._factor(ref, common)
            out[item] = [(other, strength * factor) for other, strength in row]
        return out

    async def trending(self, at: float, n: int = 50) -> list[tuple[str, float]]:
        """Items by decayed popularity at ``at`` (same closed form, per-shard reference)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(self.global_shards):
                keys = global_keys(shard)
                pipe.hget(keys[1], "ref")
                pipe.zrevrange(keys[0], 0, n - 1, withscores=True)
            replies = await pipe.execute()
        tops = [(None if ref is None else float(ref), pairs)
                for ref, pairs in zip(replies[::2], replies[1::2], strict=True)]
        return self._merge_trending(tops, at, n)

    async def popularity_of(self, items: list[str], at: float) -> dict[str, float]:
        if not items:
            return {}
        by_shard: dict[int, list[str]] = defaultdict(list)
        for item in items:
            by_shard[self._global_shard_of(item)].append(item)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, members in by_shard.items():
                keys = global_keys(shard)
                pipe.hget(keys[1], "ref")
                pipe.zmscore(keys[0], members)
            replies = await pipe.execute()
        out: dict[str, float] = {}
        for (members, ref, values) in zip(by_shard.values(), replies[::2], replies[1::2],
                                          strict=True):
            factor = self._factor(None if ref is None else float(ref), at)
            out.update((i, (v or 0.0) * factor) for i, v in zip(members, values, strict=True))
        return {item: out[item] for item in items}

    async def covisited(self, items: list[str], n: int = 20,
                        ) -> dict[str, list[tuple[str, float]]]:
        """For each item, its co-visited items by (undecayed-at-read) strength, strongest first.

        Strengths are brought to one reference (the newest of the global shards'), so they
        compare across items without rescaling.
        """
        if not items:
            return {}
        refs = await self._global_refs()
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.zrevrange(covis_key(item, self.global_shards), 0, n - 1, withscores=True)
            replies = await pipe.execute()
        return self._rescale_covisits(refs, dict(zip(items, replies, strict=True)))

    async def recall_sources(self, items: list[str], at: float, covisit_n: int = 20,
                             trending_n: int = 50,
                             ) -> tuple[dict[str, list[tuple[str, float]]],
                                        list[tuple[str, float]]]:
        """:meth:`covisited` of ``items`` and :meth:`trending` at ``at``, in one round trip
        (one script call per global shard; the same values as the two methods)."""
        seeds: list[list[str]] = [[] for _ in range(self.global_shards)]
        for item in dict.fromkeys(items):
            seeds[self._global_shard_of(item)].append(item)
        replies = await self._pipelined_script(
            self._recall_script,
            [(global_keys(shard)[:2], [covis_prefix(shard), covisit_n, trending_n,
                                       *seeds[shard]])
             for shard in range(self.global_shards)])
        refs: list[float | None] = []
        tops = []
        rows: dict[str, list[tuple[str, float]]] = {}
        for shard_seeds, (ref, popular, *neighbours) in zip(seeds, replies, strict=True):
            ref_value = None if ref is None else float(ref)
            refs.append(ref_value)
            tops.append((ref_value, [(item, float(acc)) for item, acc in
                                     zip(popular[::2], popular[1::2], strict=True)]))
            for item, flat in zip(shard_seeds, neighbours, strict=True):
                rows[item] = list(zip(flat[::2], map(float, flat[1::2]), strict=True))
        covisits = self._rescale_covisits(refs, rows)
        return {item: covisits[item] for item in items}, self._merge_trending(tops, at,
                                                                              trending_n)
