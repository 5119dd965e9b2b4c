"""End to end over real sockets: kafka-python producer → Tansu → Faust ingest worker → Redis →
rec-refresh → rerank worker → recommendations topic and rec:{user}.

Each test runs against a single Redis and against a real 3-master Redis Cluster: the workers
get only ``STYLESTREAM_REDIS`` (one node's URL) and must find out the rest themselves.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.embedded import EmbeddedServices, start_services
from scripts.embedded_cluster import start_services_with_cluster
from streams.redis_client import sync_client
from streams.store import user_keys
from tests.streaming_helpers import event_bytes, produce, read_until, running, wait_for


@pytest.fixture(params=["single", "cluster"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedServices]:
    """A fresh broker with a single Redis, or with a 3-master Redis Cluster."""
    start = start_services if request.param == "single" else start_services_with_cluster
    with start(partitions=2, workdir=str(tmp_path / "services")) as svc:
        yield svc


def test_events_yield_a_top5_per_user(services: EmbeddedServices) -> None:
    rng = random.Random(5)
    now = time.time()
    users = [f"shopper-{k}" for k in range(12)]
    history: dict[str, dict[str, str]] = {u: {} for u in users}
    records = []
    for k in range(1500):
        user = rng.choice(users)
        item = f"item-{rng.randrange(80)}"
        behavior = rng.choice(["view", "view", "view", "favorite", "cart", "purchase"])
        history[user][item] = behavior
        records.append((user.encode(), event_bytes(f"ev-{k}", user, item, behavior,
                                                   now - rng.uniform(0, 7200))))
    with running(services, ["stream"], ["rerank"]):
        produce(services, "behavior-events", records)
        latest: dict[str, dict] = {}

        def all_users_served(recs: list) -> bool:
            for rec in recs:
                latest[rec.key.decode()] = json.loads(rec.value)
            return set(latest) == set(users)

        read_until(services, "recommendations", all_users_served, timeout=90)
    assert set(latest) == set(users)
    for user, msg in latest.items():
        assert msg["user_id"] == user
        assert set(msg) >= {"generated_at", "model_version", "source_event_time", "items"}
        items = msg["items"]
        assert len(items) == 5
        scores = [it["score"] for it in items]
        assert scores == sorted(scores, reverse=True)
        bought = {i for i, b in history[user].items() if b == "purchase"}
        assert not bought & {it["item_id"] for it in items}
        assert all(it["reasons"] for it in items)
        assert msg["generated_at"] >= msg["source_event_time"]
    stored = sync_client(services.redis_url).get(f"rec:{users[0]}")
    assert stored is not None and json.loads(stored)["user_id"] == users[0]


def test_malformed_events_go_to_dlq_while_valid_ones_apply(services: EmbeddedServices) -> None:
    now = time.time()
    bad = [b"{broken json", b"\xff\xfe", json.dumps({"event_id": "x", "user_id": "u",
                                                     "item_id": "i", "behavior": "teleport",
                                                     "timestamp": now}).encode()]
    good = [event_bytes(f"g{k}", "good-user", f"it{k}", "cart", now) for k in range(3)]
    mixed = [b"u", bad[0], good[0], bad[1], good[1], bad[2], good[2]]
    with running(services, ["stream"]):
        produce(services, "behavior-events", [(b"u", v) for v in mixed[1:]])
        dlq = read_until(services, "behavior-events-dlq", lambda r: len(r) >= 3, timeout=60)
        client = sync_client(services.redis_url)
        assert wait_for(lambda: client.zcard(user_keys("good-user")[0]) == 3, timeout=30)
    reasons = sorted(json.loads(r.value)["reason"] for r in dlq)
    assert reasons == ["not_json", "not_utf8", "unknown_behavior"]
    originals = {json.loads(r.value)["original_b64"] for r in dlq}
    assert {base64.b64decode(o) for o in originals} == set(bad)


def scores_json(services: EmbeddedServices, user: str, at: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "scripts.cli", "scores", user, "--at", str(at)],
                         env={**os.environ, **services.env()},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_replaying_the_same_events_leaves_scores_unchanged(services: EmbeddedServices) -> None:
    now = time.time()
    rng = random.Random(9)
    events = [(b"r", event_bytes(f"r{k}", f"replayer-{k % 3}", f"sku{rng.randrange(10)}",
                                 rng.choice(["view", "cart", "purchase"]), now - k * 60))
              for k in range(200)]
    at = now + 3600
    client = sync_client(services.redis_url)
    with running(services, ["stream"]):
        produce(services, "behavior-events", events)
        # the sentinel shares the log's key, hence its partition: it applies after the log
        produce(services, "behavior-events", [(b"r", event_bytes("s1", "sentinel", "x", "view",
                                                                  now))])
        assert wait_for(lambda: client.exists(user_keys("sentinel")[0]), timeout=60)
        before = {u: scores_json(services, u, at) for u in ("replayer-0", "replayer-1")}
        produce(services, "behavior-events", events)  # the whole log again
        produce(services, "behavior-events", [(b"r", event_bytes("s2", "sentinel2", "x",
                                                                  "view", now))])
        assert wait_for(lambda: client.exists(user_keys("sentinel2")[0]), timeout=60)
        after = {u: scores_json(services, u, at) for u in ("replayer-0", "replayer-1")}
    assert before == after
    assert before["replayer-0"] and all(v > 0 for v in before["replayer-0"].values())
