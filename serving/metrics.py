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
#: Where a list's freshness goes, per stage (``stage`` label; seconds, wall clock):
#: ``ingest`` event time → refresh trigger sent (first Kafka hop, the ingest batch, Redis),
#: ``trigger`` trigger sent → taken by this worker (second hop, and waiting behind the batch
#: before), ``rank`` taken → list built (Redis reads, recall, scoring), ``publish`` built →
#: acknowledged by Kafka and written to Redis. The subscriber's own hop comes after.
STAGE_LAG = Histogram(
    "stylestream_freshness_stage_seconds", "Freshness of a list, by stage of the pipeline",
    ["stage"],
    buckets=(0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02,
             0.025, 0.03, 0.035, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125, 0.15, 0.2,
             0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0))
#: The stages of :data:`STAGE_LAG`, in pipeline order.
STAGES: tuple[str, ...] = ("ingest", "trigger", "rank", "publish")
