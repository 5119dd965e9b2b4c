"""The pipelined ingest agent (streams/app.py ``run_pipelined``) and its fetch-wait setting.

The agent takes and validates batch n+1 while batch n is still in Redis and Kafka. These tests
run the real ``stylestream stream`` worker against an embedded broker and Redis and hold it to
what the one-batch-at-a-time loop guaranteed: no offset is committed before its batch is in
Redis (at-least-once), and every event ends applied exactly once.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from scripts.embedded import EmbeddedServices
from scripts.fault_checks import committed_offsets
from streams.config import ConfigError, Settings, load_settings
from streams.store import user_keys
from streams.transport import fetch_wait_ms
from tests.streaming_helpers import event_bytes, produce, running, wait_for

INGEST_GROUP = "stylestream-ingest"


def committed_total(services: EmbeddedServices) -> int:
    offsets = committed_offsets(services.kafka_url, INGEST_GROUP, "behavior-events")
    return sum(offset or 0 for offset in offsets.values())


def burst(services: EmbeddedServices, tag: str, users: int, t: float) -> None:
    produce(services, "behavior-events", [
        (f"{tag}-u{k}".encode(), event_bytes(f"{tag}-e{k}", f"{tag}-u{k}", f"i{k % 7}", "view",
                                             t)) for k in range(users)])


def scored_users(client: redis.Redis, tag: str, users: int) -> int:
    return sum(bool(client.exists(user_keys(f"{tag}-u{k}")[0])) for k in range(users))


def test_no_offset_is_committed_before_its_batch_is_in_redis(services: EmbeddedServices) -> None:
    """Catches a pipelined agent that acknowledges a batch once the next one is taken (Faust's
    ``take_events`` does so by itself) instead of once its events are in Redis: with Redis
    frozen, two batches are taken and neither may be committed; after Redis is back, every
    event is applied and committed."""
    client = redis.Redis.from_url(services.redis_url)
    now = time.time()
    with running(services, ["stream"]) as (worker,):
        burst(services, "warm", 1, now)
        assert wait_for(lambda: committed_total(services) >= 1, timeout=90), \
            "the worker never committed the warm-up event"
        os.kill(services.redis_pid, signal.SIGSTOP)
        try:
            burst(services, "a", 40, now)
            time.sleep(1.0)  # > batch_within: the second burst is a batch of its own
            burst(services, "b", 40, now)
            time.sleep(8.0)  # Faust commits every 2.8 s: two commits at least
            assert worker.poll() is None
            assert committed_total(services) == 1, "offsets committed while Redis was frozen"
        finally:
            os.kill(services.redis_pid, signal.SIGCONT)
        assert wait_for(lambda: committed_total(services) == 81, timeout=60), \
            f"committed {committed_total(services)} of 81 after Redis came back"
        assert scored_users(client, "a", 40) == 40 and scored_users(client, "b", 40) == 40


def test_back_to_back_batches_apply_each_event_once_in_order(services: EmbeddedServices) -> None:
    """Catches batches applied out of order or twice by the overlapping agent: one shopper's
    events arrive in many small batches; the shopper's most recent items (a list Redis keeps
    in application order) must end with the last events sent, and the behaviour counts equal
    what was sent."""
    client = redis.Redis.from_url(services.redis_url, decode_responses=True)
    t0 = time.time() - 100
    with running(services, ["stream"]):
        for k in range(30):
            produce(services, "behavior-events", [(b"solo", event_bytes(
                f"solo-{k}", "solo", f"item{k}", "view", t0 + k))])
            time.sleep(0.03)  # about one batch each (batch_within is 20 ms)
        keys = user_keys("solo")
        assert wait_for(lambda: client.zcard(keys[0]) == 30, timeout=90), \
            f"{client.zcard(keys[0])} of 30 items scored"
        # keys: scores, meta, behaviours, last touch, seen ids, recent items (newest first)
        assert client.lrange(keys[5], 0, -1)[:3] == ["item29", "item28", "item27"], \
            f"recent items out of order: {client.lrange(keys[5], 0, -1)}"
        assert client.zcard(keys[4]) == 30, "seen event ids: each event once"


def test_fetch_wait_is_one_validated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches ``STYLESTREAM_FETCH_WAIT_MS`` read in a second place or unchecked: the default,
    a set value (seen by the settings and by the Kafka transport alike) and a bad one, whose
    error names the variable."""
    assert load_settings({}).fetch_wait_ms == Settings.fetch_wait_ms == 10
    assert load_settings({"STYLESTREAM_FETCH_WAIT_MS": "25"}).fetch_wait_ms == 25
    monkeypatch.setenv("STYLESTREAM_FETCH_WAIT_MS", "40")
    assert fetch_wait_ms() == 40
    for bad in ("0", "ten", "20000"):
        with pytest.raises(ConfigError, match="STYLESTREAM_FETCH_WAIT_MS"):
            load_settings({"STYLESTREAM_FETCH_WAIT_MS": bad})


def test_batch_within_is_one_validated_setting() -> None:
    """Catches ``STYLESTREAM_BATCH_WITHIN_MS`` unread or unchecked: the default (20 ms, the time
    every event may wait in its ingest batch), a set value in seconds on the settings, and bad
    values (0 would make Faust wait for a full batch for ever), whose error names the
    variable."""
    assert load_settings({}).batch_within == Settings.batch_within == 0.02
    assert load_settings({"STYLESTREAM_BATCH_WITHIN_MS": "5"}).batch_within == 0.005
    for bad in ("0", "soon", "20000"):
        with pytest.raises(ConfigError, match="STYLESTREAM_BATCH_WITHIN_MS"):
            load_settings({"STYLESTREAM_BATCH_WITHIN_MS": bad})
