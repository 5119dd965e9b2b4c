"""``stylestream bench memory`` measures a real Redis: small run, figures that must hold."""

from __future__ import annotations

import asyncio

from scripts.bench_memory import generate, load_and_measure
from scripts.embedded import EmbeddedServices


def test_generated_load_is_measured_with_caps_and_ttls(services: EmbeddedServices) -> None:
    """400 shoppers through the store: every event applied, keys carry TTLs, the sampled key
    sizes add up to the per-shopper figure and the global counters are split out. Catches a
    bench that measures an empty or a different server, or counts the counters twice."""
    events = generate(400, 300, 6.0, 10.0, seed=3)
    assert events == sorted(events, key=lambda e: e["timestamp"])
    assert len({e["user_id"] for e in events}) == 400
    result = asyncio.run(load_and_measure(services.redis_url, events, 400, 250, 100, seed=3))
    assert result["applied"] == len(events)
    assert result["ttls_set"]
    assert 0 < result["global_counter_bytes"] < result["used_memory_delta"]
    assert result["items_with_popularity"] <= 300
    sampled = result["sampled_bytes_by_key"]
    assert all(v > 0 for v in sampled.values())
    assert abs(sum(sampled.values()) - result["bytes_per_shopper_sampled"]) < 1e-6
    # MEMORY USAGE counts the keys alone; INFO also counts the keyspace and expiry entries
    assert 0 < result["bytes_per_shopper_sampled"] < result["bytes_per_shopper_info"]
