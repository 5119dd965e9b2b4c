"""Prometheus metrics of the ingest worker (names are the dashboard's contract)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter("stylestream_events_total", "Valid behaviour events applied, by behaviour",
                 ["behavior"])
INVALID = Counter("stylestream_invalid_events_total",
                  "Events refused by the contract and sent to the dead-letter topic", ["reason"])
DUPLICATES = Counter("stylestream_duplicate_events_total",
                     "Events whose event_id was already applied (at-least-once redelivery)")
REFRESHES = Counter("stylestream_refresh_emitted_total", "rec-refresh triggers emitted")
BATCH_SIZE = Histogram("stylestream_ingest_batch_size", "Events per ingest batch",
                       buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000))
UPDATE_LATENCY = Histogram("stylestream_score_update_seconds",
                           "Redis update time of one batch (both Lua scripts, pipelined)",
                           buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5, 1.0))
REDIS_RETRIES = Counter("stylestream_redis_retries_total",
                        "Batches retried because Redis could not be reached")
KAFKA_RETRIES = Counter("stylestream_kafka_retries_total",
                        "Sends retried because Kafka could not be reached")
