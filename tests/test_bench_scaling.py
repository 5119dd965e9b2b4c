"""``stylestream bench scaling`` drives real worker groups: a small run must measure them."""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.bench_ingest import synthetic_events
from scripts.bench_scaling import measure


def test_two_stream_workers_share_the_partitions_and_one_leaves(tmp_path: Path) -> None:
    """Two `stream` workers over 4 partitions: both apply events (the group formed), all 600
    are counted across the workers, the CPU of each is read, and after one is stopped the
    other takes over every partition. Catches a bench that polls one worker only (it would
    time out short of 600), reads no CPU, or never sees the takeover."""
    args = argparse.Namespace(stage="ingest", partitions=4, cluster=False, timeout=180.0)
    events = synthetic_events(600, 100, 50, seed=1, prefix="t")
    row = measure(2, args, events, tmp_path / "w2")
    assert row["records"] == 600 and row["events_per_s"] > 0
    assert len(row["worker_cpu_s"]) == 2 and all(c > 0 for c in row["worker_cpu_s"])
    assert row["join_s"] >= 0 and row["leave_s"] is not None and row["leave_s"] >= row["stop_s"]
    assert row["total_cpu_us_per_event"] > row["worker_cpu_us_per_event"] > 0
