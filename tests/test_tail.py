"""``stylestream tail`` against the real broker: lists print as they arrive, filtered by
shopper, with no consumer-group delay, and bad records are reported, not fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from scripts.embedded import EmbeddedServices
from tests.streaming_helpers import produce
from tests.web_helpers import recommendation


def start_tail(services: EmbeddedServices, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scripts.cli", "tail", *args],
                            env=dict(os.environ, **services.env()), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_following(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The stderr line tail prints once its partitions are assigned."""
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "following" in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"tail never started following (rc={proc.poll()})")


def test_tail_prints_a_shoppers_new_list_at_once(services: EmbeddedServices) -> None:
    """Catches a tail that joins a consumer group (≈23 s before the first record on the
    embedded broker), ignores --user, misses lists produced after it started, or prints
    something other than the contract's JSON."""
    proc = start_tail(services, "--user", "ana", "--count", "1")
    try:
        assert "no consumer group" in wait_following(proc)
        sent = time.monotonic()
        produce(services, "recommendations", [
            (b"bob", recommendation("bob", [f"b{k}" for k in range(5)])),
            (b"ana", recommendation("ana", [f"a{k}" for k in range(5)]))])
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 1
    message = json.loads(lines[0])
    assert message["user_id"] == "ana"
    assert [i["item_id"] for i in message["items"]] == [f"a{k}" for k in range(5)]
    assert took < 10, f"first list took {took:.1f}s: a group join?"


def test_tail_from_beginning_replays_and_reports_bad_records(
        services: EmbeddedServices) -> None:
    """Catches --from-beginning starting at the end, and a malformed record on the topic
    stopping the tail instead of being reported on stderr and skipped."""
    produce(services, "recommendations", [
        (b"ana", recommendation("ana", [f"a{k}" for k in range(5)])),
        (b"ana", b"{broken"),
        (b"ana", recommendation("ana", [f"c{k}" for k in range(5)]))])
    proc = start_tail(services, "--from-beginning", "--count", "2")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    firsts = [json.loads(line)["items"][0]["item_id"] for line in out.splitlines()]
    assert firsts == ["a0", "c0"]  # one key, one partition: in order
    assert "skipped a record" in err and "not a recommendation" in err


def test_tail_without_a_broker_says_so_and_exits() -> None:
    """Catches a traceback (or a hang) instead of a one-line error when nothing listens at
    STYLESTREAM_KAFKA."""
    from scripts.embedded import free_port

    env = dict(os.environ, STYLESTREAM_KAFKA=f"127.0.0.1:{free_port()}")
    result = subprocess.run([sys.executable, "-m", "scripts.cli", "tail"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 69  # cannot connect (README, "When Kafka or Redis is not there")
    assert "stylestream tail: Kafka at 127.0.0.1:" in result.stderr
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
