"""Durable embedded mode against the real services: ``stylestream up --detach`` (Tansu on S3 over
SeaweedFS, Redis with an AOF under STYLESTREAM_HOME), both workers, events, then ``down`` (or a
SIGKILL of every process of the stack) and ``up`` again: every topic record, committed consumer
offset, score and list must still be there."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from scripts.embedded import EmbeddedServices, _alive, start_services
from scripts.fault_checks import (
    committed_offsets,
    expected_scores,
    parse_log,
    read_topic,
    score_mismatches,
    stale_lists,
    stored_scores,
)
from streams.config import DecaySettings
from streams.store import user_keys
from tests.streaming_helpers import event_bytes, produce, running, wait_for

REPO = Path(__file__).resolve().parent.parent
INGEST_GROUP = "stylestream-ingest"  # streams.app.create_app's app id = its consumer group


def cli(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "STYLESTREAM_HOME": str(home),
                               "STYLESTREAM_PARTITIONS": "2"})


def up(home: Path) -> EmbeddedServices:
    result = cli("up", "--detach", home=home)
    assert result.returncode == 0, result.stderr
    exports = dict(re.findall(r"export (STYLESTREAM_\w+)=(\S+)", result.stdout))
    state = json.loads((home / "services.json").read_text())
    assert state["durable"] and all(_alive(state[k]) for k in ("kafka_pid", "redis_pid",
                                                                 "s3_pid"))
    return EmbeddedServices(kafka_url=exports["STYLESTREAM_KAFKA"],
                            redis_url=exports["STYLESTREAM_REDIS"], workdir=state["workdir"],
                            kafka_pid=state["kafka_pid"], redis_pid=state["redis_pid"],
                            s3_pid=state["s3_pid"])


def events(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for k in range(n):
        user = f"keeper-{rng.randrange(40)}"
        out.append((user.encode(), event_bytes(
            f"d{seed}-{k}", user, f"item-{rng.randrange(60)}",
            rng.choice(["view", "view", "favorite", "cart", "purchase"]),
            now - rng.uniform(0, 2 * 86400))))
    return out


def snapshot(svc: EmbeddedServices, produced: int) -> dict:
    """Everything that must survive: the log, the ingest group's offsets, scores, lists."""
    records = read_topic(svc.kafka_url, "behavior-events", at_least=produced, timeout=60)
    log = parse_log(records)
    client = redis.Redis.from_url(svc.redis_url, decode_responses=True)
    users = sorted(log.produced_at)
    lists = dict(zip(users, client.mget([f"rec:{u}" for u in users]), strict=True))
    client.close()
    return {"log": sorted((r.partition, r.offset, r.value) for r in records), "parsed": log,
            "offsets": committed_offsets(svc.kafka_url, INGEST_GROUP, "behavior-events"),
            "scores": stored_scores(svc.redis_url, users, 2e9, DecaySettings()),
            "lists": lists}


def populate(svc: EmbeddedServices, n: int) -> dict:
    """Both workers over ``n`` events until every offset is committed and every shopper has a
    fresh list; returns the snapshot taken then."""
    records = events(n, seed=n)
    with running(svc, ["stream"], ["rerank"]):
        produce(svc, "behavior-events", records)
        log = parse_log(read_topic(svc.kafka_url, "behavior-events", at_least=n))

        def settled() -> bool:
            offsets = committed_offsets(svc.kafka_url, INGEST_GROUP, "behavior-events")
            return (sum(o or 0 for o in offsets.values()) == n
                    and not stale_lists(svc.redis_url, log.produced_at))

        assert wait_for(settled, timeout=150, every=1.0), "workers did not settle"
    snap = snapshot(svc, n)
    assert len(snap["log"]) == n and snap["parsed"].events
    reference = expected_scores(snap["parsed"].events, DecaySettings())
    wrong, worst = score_mismatches(reference, snap["scores"], 2e9)
    assert wrong == [], f"{len(wrong)} shoppers off Eq. 1-3 (worst relative error {worst})"
    assert all(v is not None for v in snap["lists"].values())
    return snap


def assert_same(before: dict, after: dict) -> None:
    assert after["log"] == before["log"], "topic records lost or changed"
    assert after["offsets"] == before["offsets"], "committed offsets lost"
    assert after["scores"] == before["scores"], "scores lost or changed"
    assert after["lists"] == before["lists"], "recommendation lists lost"


def test_down_then_up_keeps_topics_offsets_scores_and_lists(tmp_path: Path) -> None:
    """Catches a stack that keeps anything in memory (Tansu ``memory://``, Redis without
    persistence, data outside STYLESTREAM_HOME): a clean ``down`` + ``up`` must lose nothing,
    and the ingest worker restarted on it must not apply anything twice."""
    home = tmp_path / "home"
    try:
        svc = up(home)
        before = populate(svc, 600)
        down = cli("down", home=home)
        assert down.returncode == 0 and "stopped 3" in down.stdout, down.stdout + down.stderr
        assert not any(_alive(p) for p in (svc.kafka_pid, svc.redis_pid, svc.s3_pid))
        again = up(home)
        assert again.kafka_pid != svc.kafka_pid
        assert_same(before, snapshot(again, 600))
        # a worker on the restored stack resumes from the committed offsets: a new event applies
        # and nothing earlier is applied again (scores of everyone else unchanged)
        now = time.time()
        with running(again, ["stream"]):
            produce(again, "behavior-events",
                    [(b"late", event_bytes("after-restart", "late", "item-x", "cart", now))])
            client = redis.Redis.from_url(again.redis_url)
            assert wait_for(lambda: client.exists(user_keys("late")[0]), timeout=90)
            client.close()
        users = sorted(before["scores"])
        assert stored_scores(again.redis_url, users, 2e9, DecaySettings()) == before["scores"]
    finally:
        cli("down", home=home)


def test_sigkill_of_the_whole_stack_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Catches writes acknowledged but not yet on disk (Redis without AOF, a broker that keeps
    records or offsets in memory before storing them): SIGKILL of Tansu, Redis and SeaweedFS
    at once, then ``up``, must find every record, offset, score and list."""
    home = tmp_path / "home"
    try:
        svc = up(home)
        before = populate(svc, 400)
        for pid in (svc.kafka_pid, svc.redis_pid, svc.s3_pid):
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not any(_alive(p) for p in (svc.kafka_pid, svc.redis_pid,
                                                             svc.s3_pid)), timeout=10)
        again = up(home)  # finds the dead pids in services.json and starts afresh
        assert_same(before, snapshot(again, 400))
    finally:
        cli("down", home=home)


def test_up_memory_keeps_nothing(tmp_path: Path) -> None:
    """Catches ``--memory`` silently writing under STYLESTREAM_HOME (or durable mode being
    the one that forgets): after ``down``/``up --memory`` the topic is empty again."""
    home = tmp_path / "home"
    try:
        result = cli("up", "--detach", "--memory", home=home)
        assert result.returncode == 0, result.stderr
        state = json.loads((home / "services.json").read_text())
        assert not state["durable"] and state["s3_pid"] is None
        kafka = re.search(r"STYLESTREAM_KAFKA=(\S+)", result.stdout).group(1)  # type: ignore
        svc = EmbeddedServices(kafka_url=kafka, redis_url="", workdir="", kafka_pid=0,
                               redis_pid=0)
        produce(svc, "behavior-events", events(20, seed=1))
        assert len(read_topic(kafka, "behavior-events", at_least=20, timeout=30)) == 20
        assert cli("down", home=home).returncode == 0
        result = cli("up", "--detach", "--memory", home=home)
        kafka = re.search(r"STYLESTREAM_KAFKA=(\S+)", result.stdout).group(1)  # type: ignore
        assert read_topic(kafka, "behavior-events", timeout=10, idle_ms=1000) == []
        assert not (home / "services" / "s3").exists()
    finally:
        cli("down", home=home)


def test_start_services_api_is_durable_across_restarts(tmp_path: Path) -> None:
    """Catches the embedded API (used by tests and benches) ignoring ``durable_home``: records
    and Redis keys written through one start are read back through the next."""
    home = str(tmp_path / "home")
    with start_services(partitions=2, durable_home=home) as svc:
        assert svc.durable
        produce(svc, "behavior-events", events(50, seed=2))
        redis.Redis.from_url(svc.redis_url).set("marker", "kept")
    with start_services(partitions=2, durable_home=home) as svc:
        assert len(read_topic(svc.kafka_url, "behavior-events", at_least=50, timeout=30)) == 50
        assert redis.Redis.from_url(svc.redis_url).get("marker") == b"kept"
