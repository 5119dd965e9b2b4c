"""The Lua scripts in a real Redis equal the pure-Python reference (streams/decay.py).

Every test runs twice: against a single Redis and against a real 3-master Redis Cluster (same
``redis-server`` binary, cluster mode), through the same store code.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from scripts.embedded import EmbeddedServices
from streams.config import DEFAULT_WEIGHTS, DecaySettings
from streams.contract import BehaviorEvent
from streams.decay import DecayedScores, brute_force_score
from streams.redis_client import sync_client
from streams.store import (
    ScoreStore,
    covis_key,
    global_keys,
    global_shard,
    shard_prefix,
    user_keys,
)

DAY = 86400.0
T0 = 1.6e9


def random_events(rng: random.Random, n: int, span_days: float, users: int = 6,
                  items: int = 20) -> list[BehaviorEvent]:
    events = []
    for k in range(n):
        events.append(BehaviorEvent(f"e{k}", f"u{rng.randrange(users)}",
                                    f"i{rng.randrange(items)}", rng.choice(list(DEFAULT_WEIGHTS)),
                                    T0 + rng.uniform(0, span_days * DAY)))
    events += rng.sample(events, n // 4)  # at-least-once redeliveries
    rng.shuffle(events)
    return events


async def apply_in_batches(store: ScoreStore, events: list[BehaviorEvent], size: int) -> list:
    return [await store.apply_batch(events[k:k + size]) for k in range(0, len(events), size)]


@pytest.mark.parametrize("span_days, cap, batch", [(20, 500, 64), (3000, 500, 7), (3000, 6, 50)])
def test_lua_equals_reference(any_redis: EmbeddedServices, span_days: float, cap: int,
                              batch: int) -> None:
    sync_client(any_redis.redis_url).flushall()
    decay = DecaySettings(max_items_per_user=cap, dedupe_ttl_seconds=10**9)
    rng = random.Random(int(span_days) + cap)
    events = random_events(rng, 1500, span_days)
    reference = DecayedScores(decay.weights, decay.decay_per_day, decay.rebase_bound, cap)
    expected_status = [reference.apply(e.event_id, e.user_id, e.item_id, e.behavior, e.timestamp)
                       for e in events]
    at = T0 + (span_days + 2) * DAY

    async def run() -> tuple[list, dict]:
        store = ScoreStore.from_url(any_redis.redis_url, decay)
        try:
            results = await apply_in_batches(store, events, batch)
            return results, {u: await store.user_scores(u, at) for u in reference.users}
        finally:
            await store.close()

    results, got = asyncio.run(run())
    assert sum(r.applied for r in results) == expected_status.count("applied")
    assert sum(r.duplicates for r in results) == expected_status.count("duplicate")
    for user in reference.users:
        want = reference.scores(user, at)
        assert set(got[user]) == set(want)
        for item, score in want.items():
            assert math.isclose(got[user][item], score, rel_tol=1e-9, abs_tol=1e-300)
        if cap < 20:
            assert len(got[user]) <= cap


def test_replaying_a_log_changes_nothing_and_ttls_are_set(empty_redis: EmbeddedServices) -> None:
    decay = DecaySettings(ttl_seconds=3600)
    events = random_events(random.Random(3), 300, 5, users=3)
    client = sync_client(empty_redis.redis_url)

    async def run() -> tuple[dict, dict, list]:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await apply_in_batches(store, events, 50)
            first = {u: await store.user_scores(u, T0 + 6 * DAY) for u in ("u0", "u1", "u2")}
            again = await apply_in_batches(store, events, 33)
            second = {u: await store.user_scores(u, T0 + 6 * DAY) for u in ("u0", "u1", "u2")}
            return first, second, again
        finally:
            await store.close()

    first, second, again = asyncio.run(run())
    assert first == second
    assert sum(r.applied for r in again) == 0
    shards = {global_shard(e.item_id, decay.global_shards) for e in events}
    assert len(shards) > 1
    for key in [k for k in user_keys("u0") if not k.endswith(":seen")] + [
            k for shard in shards for k in global_keys(shard)]:
        assert 0 < client.ttl(key) <= 3600, key
    # seen ids live at least the dedupe window (7 days), even past a shorter key TTL
    assert client.ttl(user_keys("u0")[4]) == decay.dedupe_ttl_seconds


def test_popularity_and_covisitation_follow_the_closed_form(empty_redis: EmbeddedServices) -> None:
    decay = DecaySettings()
    rng = random.Random(11)
    events = sorted(random_events(rng, 400, 40, users=8, items=10), key=lambda e: e.timestamp)
    unique = list({e.event_id: e for e in events}.values())
    at = T0 + 41 * DAY

    async def run() -> tuple[list, dict]:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await apply_in_batches(store, events, 40)
            return await store.trending(at, 100), await store.covisited(["i1", "i2"], 50)
        finally:
            await store.close()

    trending, covis = asyncio.run(run())
    for item, popularity in trending:
        history = [(e.behavior, e.timestamp) for e in unique if e.item_id == item]
        assert math.isclose(popularity, brute_force_score(history, at, decay.weights,
                                                          decay.decay_per_day), rel_tol=1e-9)
    assert [p for _, p in trending] == sorted((p for _, p in trending), reverse=True)
    # co-visitation is symmetric: C(i1,i2) == C(i2,i1)
    c12 = dict(covis["i1"]).get("i2")
    c21 = dict(covis["i2"]).get("i1")
    assert c12 is not None and math.isclose(c12, c21, rel_tol=1e-12)
    assert sync_client(empty_redis.redis_url).exists(covis_key("i1", decay.global_shards))


def test_batched_reads_equal_the_per_command_reads(empty_redis: EmbeddedServices) -> None:
    """The worker's one-call-per-shard profile read and one-call recall read give exactly what
    the plain commands give, and survive a server that forgot its scripts (NOSCRIPT)."""
    decay = DecaySettings()
    rng = random.Random(5)
    events = random_events(rng, 600, 30, users=40, items=30)
    events.append(BehaviorEvent("loc", "u3", "i1", "view", T0 + 31 * DAY, lat=52.5, lon=13.4))
    at = T0 + 32 * DAY
    users = [f"u{k}" for k in range(40)] + ["nobody"]
    seeds = ["i1", "i2", "i7", "unknown"]

    async def run() -> tuple:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await apply_in_batches(store, events, 50)
            await store.redis.script_flush()  # a restarted server: every script forgotten
            profiles = await store.user_profiles(users, at, n=7)
            covisits, trending = await store.recall_sources(seeds, at, 5, 9)
            expected = []
            for user in users:
                keys = user_keys(user)
                pairs = await store.redis.zrevrange(keys[0], 0, 6, withscores=True)
                meta = await store.redis.hgetall(keys[1])
                beh = await store.redis.hgetall(keys[2])
                last = await store.redis.hgetall(keys[3])
                expected.append((pairs, meta, beh, last))
            return (profiles, covisits, trending, expected,
                    await store.covisited(seeds, 5), await store.trending(at, 9))
        finally:
            await store.close()

    profiles, covisits, trending, expected, covisits_ref, trending_ref = asyncio.run(run())
    assert covisits == covisits_ref and trending == trending_ref and len(trending) == 9
    assert covisits["unknown"] == [] and len(covisits["i1"]) == 5
    for profile, (pairs, meta, beh, last) in zip(profiles, expected, strict=True):
        factor = math.exp(-decay.decay_per_second * (at - float(meta["ref"]))) if meta else 0.0
        assert profile["scores"] == {item: acc * factor for item, acc in pairs}
        assert list(profile["scores"]) == [item for item, _ in pairs]  # strongest first
        assert profile["behaviors"] == {i: ["view", "favorite", "cart", "purchase"][int(r)]
                                        for i, r in beh.items()}
        assert profile["last_touch"] == {i: float(t) for i, t in last.items()}
    assert profiles[3]["lat"] == 52.5 and profiles[3]["lon"] == 13.4
    assert profiles[-1] == {"scores": {}, "behaviors": {}, "last_touch": {}, "lat": None,
                            "lon": None, "last_event_time": None}


def test_global_counters_sum_a_batch_exactly(empty_redis: EmbeddedServices) -> None:
    """Popularity and co-visitation increments of one batch are summed per member inside the
    script (one ZINCRBY per member): the totals equal the per-event closed form."""
    decay = DecaySettings()
    lam = decay.decay_per_second
    seq = [("u", "i1"), ("u", "i2"), ("u", "i1"), ("v", "i2"), ("u", "i2"), ("v", "i1"),
           ("u", "i1")]
    events = [BehaviorEvent(f"g{k}", user, item, "cart", T0 + 60.0 * k)
              for k, (user, item) in enumerate(seq)]
    # increments relative to the newest event (i1's; co-visitation strengths are read at the
    # newest shard reference, popularity is decayed to that time)
    ref = events[-1].timestamp
    inc = [decay.weights["cart"] * math.exp(lam * (e.timestamp - ref)) for e in events]
    # an event's partners are its user's recent items other than its own: every event but a
    # user's first co-visits i1 and i2 (u: events 1, 2, 4, 6; v: event 5)
    pair_events = [1, 2, 4, 5, 6]
    expected_pair = sum(inc[k] for k in pair_events)

    async def run() -> tuple:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await store.apply_batch(events)
            pop = await store.popularity_of(["i1", "i2"], ref)
            return pop, await store.covisited(["i1", "i2"], 10)
        finally:
            await store.close()

    pop, covis = asyncio.run(run())
    assert math.isclose(pop["i1"], sum(inc[k] for k in (0, 2, 5, 6)), rel_tol=1e-12)
    assert math.isclose(pop["i2"], sum(inc[k] for k in (1, 3, 4)), rel_tol=1e-12)
    assert [item for item, _ in covis["i1"]] == ["i2"] and [i for i, _ in covis["i2"]] == ["i1"]
    assert math.isclose(covis["i1"][0][1], expected_pair, rel_tol=1e-12)
    assert math.isclose(covis["i2"][0][1], expected_pair, rel_tol=1e-12)


def _primaries(client: object) -> list:
    """The client itself, or a client per primary of a cluster."""
    from redis.cluster import RedisCluster

    return ([redis_node.redis_connection for redis_node in client.get_primaries()]
            if isinstance(client, RedisCluster) else [client])


def _script_calls(client: object) -> int:
    """EVALSHA commands served so far, summed over every primary of a cluster."""
    return sum(node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
               for node in _primaries(client))


def _pending_entries(client: object) -> int:
    """Pending global entries left in the user shards' hashes (all primaries)."""
    return sum(node.hlen(key) for node in _primaries(client)
               for key in node.keys("ss:{s*}:pending"))


def test_a_batch_costs_one_call_per_script_on_a_single_redis(
        empty_redis: EmbeddedServices) -> None:
    """Catches the store falling back to one Lua call per shard on a single Redis (a batch over
    many user and global shards must cost exactly two calls: the users, then the globals with
    the release of the pending entries) and packing several shards into one call on Redis
    Cluster (CROSSSLOT: there each call covers one shard, and the release is one call per user
    shard after the counting). No pending entry is left behind, and the scores equal the
    pure-Python reference either way."""
    from redis.cluster import RedisCluster

    decay = DecaySettings()
    rng = random.Random(7)
    events = random_events(rng, 400, 2, users=200, items=60)
    reference = DecayedScores(decay.weights, decay.decay_per_day, decay.rebase_bound,
                              decay.max_items_per_user)
    for e in events:
        reference.apply(e.event_id, e.user_id, e.item_id, e.behavior, e.timestamp)
    client = sync_client(empty_redis.redis_url)
    at = T0 + 3 * DAY

    async def run() -> dict:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await store.apply_batch(events[:1])  # scripts loaded (NOSCRIPT retries) first
            before = _script_calls(client)
            await store.apply_batch(events[1:])
            calls = _script_calls(client) - before
            return {"calls": calls, "pending": _pending_entries(client),
                    "scores": {u: await store.user_scores(u, at) for u in reference.users}}
        finally:
            await store.close()

    got = asyncio.run(run())
    user_shards = {shard_prefix(e.user_id) for e in events[1:]}
    global_shards = {global_shard(e.item_id, decay.global_shards) for e in events[1:]}
    if isinstance(client, RedisCluster):
        assert got["calls"] == 2 * len(user_shards) + len(global_shards) > 3
    else:
        assert got["calls"] == 2
    assert got["pending"] == 0
    for user in reference.users:
        want = reference.scores(user, at)
        assert set(got["scores"][user]) == set(want)
        for item, score in want.items():
            assert math.isclose(got["scores"][user][item], score, rel_tol=1e-9)


def test_user_ttls_are_refreshed_once_per_interval_and_new_keys_get_one(
        empty_redis: EmbeddedServices) -> None:
    """A user's keys get their TTL again only once the refresh interval (1 % of the TTL) has
    passed, the seen ids on every batch, and a key created while the refresh is skipped still
    gets one. Catches keys left without a TTL (never expiring) and a refresh that is skipped
    for good or never skipped."""
    import time

    decay = DecaySettings(ttl_seconds=100)  # refresh interval: 1 s
    client = sync_client(empty_redis.redis_url)
    keys = user_keys("u0")
    others = [key for key in keys if not key.endswith(":seen")]

    def event(k: int, item: str = "i0") -> list[BehaviorEvent]:
        return [BehaviorEvent(f"e{k}", "u0", item, "view", T0 + k)]

    async def run() -> None:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await store.apply_batch(event(0))
            assert all(0 < client.ttl(key) <= 100 for key in others)
            for key in keys:
                client.expire(key, 50)
            await store.apply_batch(event(1, "i1"))  # within the interval: not refreshed
            assert all(0 < client.ttl(key) <= 50 for key in others), [
                client.ttl(key) for key in others]
            assert client.ttl(keys[4]) == decay.dedupe_ttl_seconds  # seen ids: every batch
            client.delete(keys[5])  # the recent items gone: created again by the next event
            await store.apply_batch(event(2, "i2"))
            assert client.ttl(keys[5]) > 50
            for key in keys:
                client.expire(key, 50)
            time.sleep(1.1)
            await store.apply_batch(event(3, "i3"))  # the interval has passed: refreshed
            assert all(50 < client.ttl(key) <= 100 for key in others)
        finally:
            await store.close()

    asyncio.run(run())


def test_followed_counts_are_only_hints(empty_redis: EmbeddedServices) -> None:
    """The item and seen-id counts the user script keeps in P:meta are checked against the real
    counts before anything is dropped. Catches items or seen ids (dedupe!) trimmed because a
    stale count said the caps were exceeded."""
    decay = DecaySettings(max_items_per_user=5, dedupe_max_ids=6)
    client = sync_client(empty_redis.redis_url)
    keys = user_keys("u0")

    async def run() -> list:
        store = ScoreStore.from_url(empty_redis.redis_url, decay)
        try:
            await store.apply_batch([BehaviorEvent(f"e{k}", "u0", f"i{k}", "view", T0 + k)
                                     for k in range(4)])
            client.hset(keys[1], mapping={"n": 10**6, "sn": 10**6})  # stale, far too high
            await store.apply_batch([BehaviorEvent("e4", "u0", "i0", "view", T0 + 4)])
            assert client.zcard(keys[0]) == 4 and client.zcard(keys[4]) == 5
            assert client.hget(keys[1], "sn") == b"5"
            again = await store.apply_batch([BehaviorEvent(f"e{k}", "u0", "i9", "view", T0 + 9)
                                             for k in range(5)])
            assert again.duplicates == 5  # no seen id was dropped
            more = [BehaviorEvent(f"f{k}", "u0", f"j{k}", "view", T0 + 10 + k) for k in range(3)]
            await store.apply_batch(more)  # now past both caps: trimmed to them exactly
            return [client.zcard(keys[0]), client.zcard(keys[4])]
        finally:
            await store.close()

    assert asyncio.run(run()) == [5, 6]
