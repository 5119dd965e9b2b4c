"""``stylestream bench ingest``: its ceiling agent and its freshness curve's saturation rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from scripts.bench_ingest import metric_total, plot_curve, saturated
from scripts.embedded import EmbeddedServices, free_port, stop_processes
from tests.streaming_helpers import event_bytes, produce, wait_for


def test_ceiling_agent_takes_every_event_and_does_nothing_else(
        services: EmbeddedServices, tmp_path: Path) -> None:
    """Catches a ceiling that is not one: an agent that loses events (it would count fewer
    than were sent) or that does the product's work (scores in Redis), either of which makes
    the product ÷ ceiling ratio meaningless."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.bench_ingest", "--variant", "ceiling", "--metrics-port",
         str(port)], env=dict(os.environ, **services.env()),
        stdout=(tmp_path / "ceiling.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        produce(services, "behavior-events", [
            (f"u{k % 17}".encode(), event_bytes(f"e{k}", f"u{k % 17}", f"i{k % 5}", "view",
                                                1.7e9)) for k in range(300)])

        def taken() -> float:
            try:
                return metric_total(port, "stylestream_events_total")
            except OSError:
                return -1.0

        assert wait_for(lambda: taken() == 300, timeout=90), f"took {taken()} of 300"
        assert proc.poll() is None
    finally:
        stop_processes(proc)
    client = redis.Redis.from_url(services.redis_url)
    assert [k for k in client.scan_iter("ss:*")] == [], "the ceiling agent wrote scores"


def point(**overrides: float) -> dict:
    base = {"target_events_per_s": 1000.0, "offered_events_per_s": 999.0, "p50_ms": 40.0,
            "p99_ms": 90.0, "first_quarter_p50_ms": 40.0, "last_quarter_p50_ms": 45.0,
            "load_before": 1.0, "load_after": 1.2}
    return {**base, **overrides}


def test_saturation_rule_and_plot(tmp_path: Path) -> None:
    """Catches a curve that runs on past the load the pipeline cannot keep up with, or stops
    early: a growing backlog, a slow median and a generator short of its rate each count as
    saturated; a steady point does not. And the plot is written as a PNG."""
    assert saturated(point()) == ""
    assert saturated(point(last_quarter_p50_ms=4000.0)) == "backlog grew"
    assert saturated(point(p50_ms=1500.0, first_quarter_p50_ms=1400.0,
                           last_quarter_p50_ms=1500.0)) == "median over 1 s"
    assert saturated(point(offered_events_per_s=800.0)) == "generator short of the rate"
    points = [dict(point(), saturated=""),
              dict(point(target_events_per_s=5000.0, offered_events_per_s=4990.0,
                         p50_ms=900.0, p99_ms=3000.0, last_quarter_p50_ms=2500.0,
                         first_quarter_p50_ms=300.0), saturated="backlog grew")]
    path = tmp_path / "curve.png"
    plot_curve(points, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bench", ["ingest", "faults", "memory", "rerank", "scaling", "storage"])
def test_a_directory_as_out_is_refused_before_the_run(bench: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """Catches a benchmark that runs for minutes and then dies with a traceback because
    ``--out`` named a directory instead of the JSON file to write."""
    from scripts.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["bench", bench, "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "is a directory" in capsys.readouterr().err
