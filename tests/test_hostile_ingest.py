"""Hostile records beside valid events, through the real ingest worker (embedded Tansu + Redis,
kafka-python producer, Faust worker subprocess)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import time

import redis

from scripts.embedded import EmbeddedServices
from streams.config import DecaySettings, InputLimits
from streams.contract import InvalidEvent, parse_event
from streams.store import ScoreStore, user_keys
from tests.streaming_helpers import event_bytes, produce, read_until, running, wait_for
from tests.test_dedupe import assert_close, brute_force_user

DAY = 86400.0
MAX_BYTES = 65536


def hostile_records(now: float, rng: random.Random) -> list[bytes]:
    def event(**fields: object) -> bytes:
        base = {"event_id": "h", "user_id": "shopper-0", "item_id": "sku-1",
                "behavior": "view", "timestamp": now}
        base.update(fields)
        return json.dumps(base).encode()

    nested = "[" * 900 + '"view"' + "]" * 900
    return [
        bytes(rng.randrange(256) for _ in range(64)),
        bytes(rng.randrange(256) for _ in range(300)),
        b"",
        b"[" * 60_000,  # deep, under the size limit
        event(event_id="h1").replace(b'"view"', nested.encode()),
        json.dumps({"event_id": "h2", "user_id": "shopper-1", "item_id": "x" * (3 * MAX_BYTES),
                    "behavior": "view", "timestamp": now}).encode(),
        event(event_id="h3", timestamp=float("nan")),
        event(event_id="h4", timestamp=float("inf")),
        event(event_id="h5", timestamp=-5),
        event(event_id="h6", timestamp=now + 400 * DAY),
        event(event_id="h7").replace(str(now).encode(), b"1" + b"0" * 400),
        event(event_id="h8", user_id="shopper-0\u0000x"),
        event(event_id="h9", user_id="shopper-0\x1eforged\x1f"),
        event(event_id="h10", item_id="\ud800"),
        event(event_id="h11", user_id=["shopper-0"]),
        event(event_id="h12", item_id={"id": 1}),
        event(event_id="h13", behavior=5),
        event(event_id="h14", lat="north", lon=2.0),
        event(event_id="e" * 300),
        event(event_id="h15", timestamp="2026-11-01T10:00:00"),
        b'{"event_id": "h16", "user_id": "shopper-0", "item_id": "i", "behavior": "view", '
        b'"timestamp": Infinity, "lat": NaN, "lon": NaN}',
    ]


def test_hostile_input_is_dead_lettered_and_every_valid_event_applies_once(
        services: EmbeddedServices) -> None:
    """Random bytes, deep JSON, an oversized value (over STYLESTREAM_MAX_MESSAGE_BYTES), NaN/±inf,
    negative, far-future and 400-digit timestamps, control characters (also the store's own
    field separators), lone surrogates and wrong types, mixed into 30 days of valid events that
    are then all redelivered. Afterwards: the worker is alive, the DLQ holds exactly the bad
    records (original bytes or, for the oversized one, its digest) each with the reason the
    contract gives, and every shopper's scores equal Eq. 1–3 over the valid events, each once.
    Catches a parser exception that kills the worker, a lost or doubled valid event, a dead
    letter that cannot be published, and forgetting old events on redelivery."""
    rng = random.Random(13)
    now = time.time()
    limits = InputLimits(max_message_bytes=MAX_BYTES)
    shoppers = [f"shopper-{k}" for k in range(6)]
    valid = [(f"v{k}", rng.choice(shoppers), f"sku-{rng.randrange(25)}",
              rng.choice(["view", "favorite", "cart", "purchase"]), now - rng.uniform(0, 30 * DAY))
             for k in range(300)]
    bad = hostile_records(now, rng)
    expected: dict[str, str] = {}  # sha256 of the original -> reason
    for raw in bad:
        try:
            parse_event(raw, now=now, limits=limits)
        except InvalidEvent as error:
            expected[hashlib.sha256(raw).hexdigest()] = error.reason
        else:
            raise AssertionError(f"hostile record {raw[:60]!r} is valid")
    assert len(expected) == len(bad)
    stream = [event_bytes(*v) for v in valid]
    mixed = stream[:]
    for raw in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), raw)
    redelivered = stream[:]
    rng.shuffle(redelivered)
    sentinel = event_bytes("sentinel", "sentinel", "x", "view", now)
    client = redis.Redis.from_url(services.redis_url)
    with running(services, ["stream"],
                 env={"STYLESTREAM_MAX_MESSAGE_BYTES": str(MAX_BYTES)}) as procs:
        # one key: one partition, so the sentinel is applied after everything before it
        produce(services, "behavior-events", [(b"k", v) for v in mixed + redelivered])
        produce(services, "behavior-events", [(b"k", sentinel)])
        assert wait_for(lambda: client.exists(user_keys("sentinel")[0]), timeout=90)
        dlq = read_until(services, "behavior-events-dlq", lambda r: len(r) >= len(bad),
                         timeout=30)
        assert procs[0].poll() is None, "the ingest worker died"
    got: dict[str, str] = {}
    for record in dlq:
        letter = json.loads(record.value)
        digest = letter.get("original_sha256") or hashlib.sha256(
            base64.b64decode(letter["original_b64"])).hexdigest()
        got[digest] = letter["reason"]
        assert letter["detail"]
    assert got == expected and len(dlq) == len(bad)
    assert "too_large" in got.values() and "not_json" in got.values()

    decay = DecaySettings()
    at = now + 3600
    events = [parse_event(raw, now=now) for raw in stream]

    async def read() -> dict[str, dict[str, float]]:
        store = ScoreStore.from_url(services.redis_url, decay)
        try:
            return {u: await store.user_scores(u, at) for u in shoppers}
        finally:
            await store.close()

    scores = asyncio.run(read())
    for user in shoppers:
        want = brute_force_user(events, user, at, decay)
        assert want and all(math.isfinite(v) for v in want.values())
        assert_close(scores[user], want)
