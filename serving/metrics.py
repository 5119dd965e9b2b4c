"""Prometheus metrics of the rerank worker (names are the dashboard's contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRESHNESS = Histogram(
    "stylestream_freshness_seconds",
    "Publish time of a Top-5 list minus the event time of the newest event behind it",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
RERANK_LATENCY = Histogram(
    "stylestream_rerank_seconds", "Time to recall, score and publish one micro-batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
SCORE_LATENCY = Histogram(
    "stylestream_scorer_seconds", "Time spent inside the scorer for one micro-batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
MICRO_BATCH = Histogram("stylestream_rerank_batch_users", "Distinct shoppers per micro-batch",
                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
COALESCED = Counter("stylestream_refresh_coalesced_total",
                    "Refresh triggers merged into another trigger of the same shopper")
PUBLISHED = Counter("stylestream_recommendations_published_total", "Top-5 lists published")
BAD_TRIGGERS = Counter("stylestream_bad_refresh_total", "Unreadable rec-refresh messages skipped")
CANDIDATES = Histogram("stylestream_candidates", "Candidates recalled per shopper",
                       buckets=(0, 5, 10, 25, 50, 100, 200, 300, 500))
MODEL_VERSION = Gauge("stylestream_model_info", "Scorer version in use (label)", ["version"])
FAILED_BATCHES = Counter("stylestream_rerank_failed_batches_total",
                         "Micro-batches whose rerank raised (logged with traceback)")
