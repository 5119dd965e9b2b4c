"""Redis Cluster support: the client is chosen from the server's mode, the global counters are
spread over several slots (and nodes), and sharding them changes no value a reader sees.

A real 3-master cluster on loopback (same ``redis-server`` binary, cluster mode) and a real
single Redis; no stand-ins.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from scripts.embedded import EmbeddedServices, start_services
from scripts.embedded_cluster import EmbeddedCluster, start_cluster
from streams.config import ConfigError, DecaySettings, load_settings
from streams.contract import BehaviorEvent
from streams.redis_client import async_client, sync_client
from streams.store import ScoreStore, global_keys, user_keys
from tests.streaming_helpers import event_bytes, flush_redis, produce, running, wait_for

T0 = 1.6e9
DAY = 86400.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    with start_cluster(3, workdir=str(tmp_path_factory.mktemp("cluster"))) as running:
        yield running


@pytest.fixture
def empty_cluster(cluster: EmbeddedCluster) -> EmbeddedCluster:
    flush_redis(cluster.url)
    return cluster


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServices]:
    with start_services(partitions=1, workdir=str(tmp_path_factory.mktemp("single"))) as svc:
        yield svc


def shopping(seed: int, n: int = 1200, users: int = 60, items: int = 200) -> list[BehaviorEvent]:
    rng = random.Random(seed)
    return [BehaviorEvent(f"e{k}", f"u{rng.randrange(users)}", f"i{rng.randrange(items)}",
                          rng.choice(["view", "view", "favorite", "cart", "purchase"]),
                          T0 + rng.uniform(0, 20 * DAY)) for k in range(n)]


async def apply_all(store: ScoreStore, events: list[BehaviorEvent], size: int = 100) -> None:
    for k in range(0, len(events), size):
        await store.apply_batch(events[k:k + size])


def test_the_client_follows_the_servers_mode(cluster: EmbeddedCluster,
                                             single: EmbeddedServices) -> None:
    """Any node's URL gives the cluster clients (sync and asyncio) that reach every node; a
    single server gives the plain ones. Catches a factory that ignores ``cluster_enabled``,
    a client that only talks to the named node, or a URL check that lets a cluster db != 0
    through."""
    for port in cluster.ports:
        url = f"redis://127.0.0.1:{port}/0"
        client = sync_client(url)
        assert isinstance(client, RedisCluster)
        assert len(client.get_primaries()) == 3
        for k in range(30):  # keys over all slots, set through a node that owns a third
            client.set(f"k{k}", k)
        assert [int(client.get(f"k{k}")) for k in range(30)] == list(range(30))
        client.close()
        aclient = async_client(url)
        assert isinstance(aclient, AsyncRedisCluster)
        asyncio.run(aclient.aclose())
    plain = sync_client(single.redis_url)
    assert type(plain) is redis.Redis and plain.ping()
    plain.close()
    with pytest.raises(ValueError, match="only database 0"):
        sync_client(f"redis://127.0.0.1:{cluster.ports[1]}/2")


def test_an_unreachable_server_fails_after_the_wait_with_redis_errors() -> None:
    """No Redis at the URL: asking its mode gives up after the wait (at once by default) with
    redis-py's own ConnectionError, which every caller already classifies and retries; a
    password in the URL stays out of the message. Catches a probe that hangs, retries for
    ever, or wraps the error in a type the callers do not know."""
    url = "redis://app:Probe-secret-1@127.0.0.1:9/0"
    for wait in (0.0, 0.5):
        started = time.monotonic()
        with pytest.raises(redis.exceptions.ConnectionError) as caught:
            sync_client(url, wait=wait)
        assert time.monotonic() - started < wait + 5
        assert "Probe-secret-1" not in str(caught.value)


def test_global_counters_spread_over_slots_and_nodes(empty_cluster: EmbeddedCluster) -> None:
    """Popularity and co-visitation land under every global shard's hash tag, and those tags
    sit on every master: no single slot or node takes every batch."""
    decay = DecaySettings()

    async def run() -> None:
        store = ScoreStore.from_url(empty_cluster.url, decay)
        try:
            await apply_all(store, shopping(1))
        finally:
            await store.close()

    asyncio.run(run())
    client = sync_client(empty_cluster.url)
    pop_keys = [global_keys(shard)[0] for shard in range(decay.global_shards)]
    assert all(client.exists(key) for key in pop_keys)
    assert len({client.keyslot(key) for key in pop_keys}) == decay.global_shards
    client.close()
    for port in empty_cluster.ports:
        node = redis.Redis(host="127.0.0.1", port=port)
        assert node.keys("ss:{g*}:pop"), f"node :{port} holds no popularity shard"
        assert node.keys("ss:{g*}:cv:*"), f"node :{port} holds no co-visitation row"
        node.close()


def test_sharding_the_global_counters_changes_no_reading(empty_cluster: EmbeddedCluster) -> None:
    """The same events with 1 global shard and with 16 read the same: trending (top and
    order), popularity of chosen items, and co-visitation rows up to one common scale.
    Catches a wrong merge of per-shard tops, a pair counted in the wrong shard or direction,
    and shards left on different references."""
    events = shopping(2)
    at = T0 + 21 * DAY
    items = [f"i{k}" for k in range(0, 200, 7)]

    async def read(shards: int) -> tuple:
        sync_client(empty_cluster.url).flushall()
        store = ScoreStore.from_url(empty_cluster.url, DecaySettings(global_shards=shards))
        try:
            await apply_all(store, events)
            covis, trend = await store.recall_sources(items, at, 10, 40)
            return (await store.trending(at, 40), await store.popularity_of(items, at),
                    await store.covisited(items, 10), covis, trend)
        finally:
            await store.close()

    one = asyncio.run(read(1))
    many = asyncio.run(read(16))
    assert [item for item, _ in one[0]] == [item for item, _ in many[0]]
    for (_, pop_a), (_, pop_b) in zip(one[0], many[0], strict=True):
        assert math.isclose(pop_a, pop_b, rel_tol=1e-9)
    assert many[4] == many[0]  # the one-call read equals the plain read
    for item in items:
        assert math.isclose(one[1][item], many[1][item], rel_tol=1e-9)
    assert many[3] == many[2]
    # same rows, and one scale for every row: the ratio between the configurations is one
    # constant (only the common reference time differs)
    for item in items:
        assert [o for o, _ in one[2][item]] == [o for o, _ in many[2][item]]
    ratios = [b / a for item in items
              for (_, a), (_, b) in zip(one[2][item], many[2][item], strict=True)]
    assert len(ratios) > 50
    assert all(math.isclose(r, ratios[0], rel_tol=1e-9) for r in ratios)


def test_a_node_that_forgot_its_scripts_is_reloaded(empty_cluster: EmbeddedCluster) -> None:
    """One master restarted (its scripts gone, the others keep theirs): writes and reads
    routed to it get NOSCRIPT, the store loads the scripts again and nothing is lost."""
    decay = DecaySettings()
    events = shopping(3, n=600)
    target = empty_cluster.ports[2]

    node = redis.Redis(host="127.0.0.1", port=target)

    async def run() -> tuple[int, list[dict], str]:
        store = ScoreStore.from_url(empty_cluster.url, decay)
        try:
            await apply_all(store, events[:300])
            node.script_flush()
            assert node.script_exists(store._user_script.sha) == [False]
            applied = 0
            for k in range(300, 600, 100):
                applied += (await store.apply_batch(events[k:k + 100])).applied
            users = [f"u{k}" for k in range(60)]
            return applied, await store.user_profiles(users, T0 + 30 * DAY), \
                store._user_script.sha
        finally:
            await store.close()

    applied, profiles, sha = asyncio.run(run())
    assert applied == 300
    assert all(p["scores"] for p in profiles)
    assert node.script_exists(sha) == [True]
    node.close()


def test_global_shards_setting_is_validated() -> None:
    """``STYLESTREAM_GLOBAL_SHARDS`` reaches the store's settings; 0 is refused clearly."""
    assert load_settings({"STYLESTREAM_GLOBAL_SHARDS": "4"}).decay.global_shards == 4
    assert load_settings({}).decay.global_shards == 8
    with pytest.raises(ConfigError, match="STYLESTREAM_GLOBAL_SHARDS"):
        load_settings({"STYLESTREAM_GLOBAL_SHARDS": "0"})
    with pytest.raises(ConfigError, match="STYLESTREAM_GLOBAL_SHARDS"):
        load_settings({"STYLESTREAM_GLOBAL_SHARDS": "many"})


def _cluster_state(port: int) -> str:
    node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        return str(node.cluster("info").get("cluster_state"))
    finally:
        node.close()


def test_ingest_rides_out_a_crashed_master(tmp_path: Path) -> None:
    """A master is killed while the ingest worker runs: the cluster goes down (CLUSTERDOWN on
    every node), events sent meanwhile wait, and once the node is back the worker applies them
    without a restart. Catches cluster errors treated as bad batches (dropped or crashing the
    agent) instead of as Redis being unavailable."""
    now = time.time()
    with start_services(partitions=2, workdir=str(tmp_path / "kafka")) as kafka, \
            start_cluster(3, workdir=str(tmp_path / "cluster")) as nodes:
        svc = dataclasses.replace(kafka, redis_url=nodes.url)
        client = sync_client(nodes.url)
        with running(svc, ["stream"]) as (proc,):
            produce(svc, "behavior-events", [
                (f"a{k}".encode(), event_bytes(f"a{k}", f"a{k}", "x", "view", now))
                for k in range(20)])
            assert wait_for(lambda: all(client.exists(user_keys(f"a{k}")[0])
                                        for k in range(20)), timeout=60)
            nodes.kill(2)
            assert wait_for(lambda: _cluster_state(nodes.ports[0]) == "fail", timeout=30)
            produce(svc, "behavior-events", [
                (f"b{k}".encode(), event_bytes(f"b{k}", f"b{k}", f"y{k % 3}", "cart", now))
                for k in range(20)])
            time.sleep(2.0)  # the worker meets the failed cluster and keeps retrying
            assert proc.poll() is None
            nodes.restart(2)
            client.close()
            client = sync_client(nodes.url)
            assert wait_for(lambda: all(client.exists(user_keys(f"b{k}")[0])
                                        for k in range(20)), timeout=60)
            assert proc.poll() is None
        for k in range(20):
            assert client.zrange(user_keys(f"b{k}")[0], 0, -1) == [f"y{k % 3}".encode()]
        client.close()
