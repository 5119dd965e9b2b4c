"""Both workers against real services that come late, go away under load and come back.

* started before the broker and Redis exist, each worker answers ``/healthz`` at once, reports
  ``/readyz`` 503 and turns 200 on its own once the services start;
* with Redis stopped (and restarted from its append-only file) or the broker paused under load,
  ``/readyz`` drops to 503 and returns to 200, and every event is applied exactly once (the
  scores equal the pure-Python reference), and the rerank worker serves lists again.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from scripts.embedded import (
    EmbeddedServices,
    free_port,
    redis_command,
    start_services,
    stop_processes,
    wait_for_port,
)
from streams.config import DecaySettings
from streams.decay import DecayedScores
from streams.store import ScoreStore
from tests.streaming_helpers import event_bytes, running, wait_for

#: fast probes, so that an outage shows in /readyz within a few seconds
FAST = {"STYLESTREAM_SERVICE_TIMEOUT": "1"}


def status(port: int, path: str) -> int | None:
    """HTTP status of ``path`` on the worker's metrics port; None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def readiness(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


class Load:
    """Events produced at a steady pace from a thread, recorded for the reference."""

    def __init__(self, services: EmbeddedServices, n: int, rate: float, seed: int) -> None:
        rng = random.Random(seed)
        now = time.time()
        self.users = [f"load-{k}" for k in range(8)]
        self.events = [(f"ev-{seed}-{k}", rng.choice(self.users), f"sku-{rng.randrange(40)}",
                        rng.choice(["view", "view", "favorite", "cart", "purchase"]),
                        now - 3600 + k * 0.5) for k in range(n)]
        self.rate = rate
        self.producer = KafkaProducer(bootstrap_servers=services.kafka_url, linger_ms=5)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        for k, (event_id, user, item, behavior, t) in enumerate(self.events):
            self.producer.send("behavior-events", key=user.encode(),
                               value=event_bytes(event_id, user, item, behavior, t))
            pause = started + (k + 1) / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        self.producer.flush(timeout=120)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=180)
        self.producer.close(timeout=10)

    def reference(self, at: float) -> dict[str, dict[str, float]]:
        decay = DecaySettings()
        ref = DecayedScores(decay.weights, decay.decay_per_day, decay.rebase_bound,
                            decay.max_items_per_user)
        for event_id, user, item, behavior, t in self.events:
            ref.apply(event_id, user, item, behavior, t)
        return {u: ref.scores(u, at) for u in self.users}


def stored_scores(redis_url: str, users: list[str], at: float) -> dict[str, dict[str, float]]:
    async def read() -> dict[str, dict[str, float]]:
        store = ScoreStore.from_url(redis_url, DecaySettings())
        try:
            return {u: await store.user_scores(u, at) for u in users}
        finally:
            await store.close()

    return asyncio.run(read())


def same_scores(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> bool:
    return all(set(got[u]) == set(want[u]) and all(
        math.isclose(got[u][i], s, rel_tol=1e-9) for i, s in want[u].items()) for u in want)


def assert_applied_once(services: EmbeddedServices, load: Load) -> None:
    """Wait for the scores to reach the reference; they must then equal it (a lost event
    leaves them short, a doubly applied one over)."""
    at = time.time()
    want = load.reference(at)
    wait_for(lambda: same_scores(stored_scores(services.redis_url, load.users, at), want),
             timeout=120, every=1.0)
    got = stored_scores(services.redis_url, load.users, at)
    for user in load.users:
        assert set(got[user]) == set(want[user]), user
        for item, score in want[user].items():
            assert math.isclose(got[user][item], score, rel_tol=1e-9), (user, item)


def assert_serves_lists(services: EmbeddedServices) -> None:
    """A new event after the outage yields a fresh Top-5 from the rerank worker."""
    user = f"after-{time.time_ns()}"
    producer = KafkaProducer(bootstrap_servers=services.kafka_url)
    producer.send("behavior-events", key=user.encode(),
                  value=event_bytes(f"{user}-e", user, "sku-1", "cart", time.time()))
    producer.flush()
    producer.close()
    client = redis.Redis.from_url(services.redis_url)
    assert wait_for(lambda: client.get(f"rec:{user}") is not None, timeout=90)


def stop_and_read_logs(procs: list[subprocess.Popen]) -> list[str]:
    """Stop the workers (before their services go) and return their stderr; none may hold a
    traceback: outages are reported in log lines, not stack dumps."""
    stop_processes(*procs)
    logs = [proc.stderr.read().decode() if proc.stderr else "" for proc in procs]
    for log in logs:
        assert "Traceback" not in log, log[-3000:]
    return logs


def wait_status(port: int, want: int, timeout: float) -> bool:
    return wait_for(lambda: status(port, "/readyz") == want, timeout=timeout, every=0.25)


def worker_commands(ports: dict[str, int]) -> list[list[str]]:
    return [["stream", "--metrics-port", str(ports["stream"])],
            ["rerank", "--metrics-port", str(ports["rerank"])]]


def test_workers_started_before_their_services_become_ready(tmp_path: Path) -> None:
    """Catches a worker that exits (crash loop) when the broker and Redis come up after it,
    and health endpoints that are missing or report ready without the services."""
    kafka_port, redis_port = free_port(), free_port()
    ports = {"stream": free_port(), "rerank": free_port()}
    absent = EmbeddedServices(kafka_url=f"127.0.0.1:{kafka_port}",
                              redis_url=f"redis://127.0.0.1:{redis_port}/0", workdir="",
                              kafka_pid=0, redis_pid=0)
    with running(absent, *worker_commands(ports), env=FAST) as procs:
        for port in ports.values():
            assert wait_for(lambda p=port: status(p, "/healthz") == 200, timeout=60)
            assert status(port, "/readyz") == 503
            body = readiness(port)
            assert not body["ready"] and not body["checks"]["kafka"]["ok"]
            assert "cannot connect" in body["checks"]["kafka"]["detail"]
        time.sleep(3)  # several attempts with backoff, and nobody gave up
        assert all(proc.poll() is None for proc in procs)
        with start_services(partitions=2, workdir=str(tmp_path / "late"),
                            kafka_port=kafka_port, redis_port=redis_port) as services:
            started = time.monotonic()
            for port in ports.values():
                assert wait_status(port, 200, timeout=90), readiness(port)
            print(f"late services: both ready {time.monotonic() - started:.1f}s after they "
                  "started")
            assert all(proc.poll() is None for proc in procs)
            assert_serves_lists(services)
            logs = stop_and_read_logs(procs)
    for log in logs:
        assert "waiting for services (attempt 2)" in log


def test_redis_outage_under_load_loses_nothing(tmp_path: Path) -> None:
    """Catches a worker that dies, drops or double-applies a batch, or stays ready, while Redis
    is down under load, and one that does not become ready again when Redis returns."""
    ports = {"stream": free_port(), "rerank": free_port()}
    with start_services(partitions=2, workdir=str(tmp_path / "svc"),
                        redis_persist=True) as services, \
            running(services, *worker_commands(ports), env=FAST) as procs:
        for port in ports.values():
            assert wait_status(port, 200, timeout=90), readiness(port)
        restarted: subprocess.Popen | None = None
        try:
            with Load(services, n=2400, rate=400, seed=1) as load:
                time.sleep(1.5)
                os.kill(services.redis_pid, signal.SIGTERM)  # writes its AOF, then exits
                down = time.monotonic()
                for port in ports.values():
                    assert wait_status(port, 503, timeout=20), readiness(port)
                noticed = time.monotonic() - down
                assert not readiness(ports["stream"])["checks"]["redis"]["ok"]
                time.sleep(3)
                redis_port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
                restarted = subprocess.Popen(
                    redis_command(redis_port, services.workdir, persist=True),
                    cwd=services.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for_port("127.0.0.1", redis_port, 20, restarted, "redis-server")
                back = time.monotonic()
                for port in ports.values():
                    assert wait_status(port, 200, timeout=60), readiness(port)
                print(f"redis outage: both unready after {noticed:.1f}s, ready again "
                      f"{time.monotonic() - back:.1f}s after the restart")
            assert_applied_once(services, load)
            assert metric(ports["stream"], "stylestream_redis_retries_total") > 0
            assert_serves_lists(services)
            assert all(proc.poll() is None for proc in procs)
            logs = stop_and_read_logs(procs)
            assert "redis unavailable" in logs[0] and "redis is back" in logs[0]
        finally:
            if restarted is not None:
                stop_processes(restarted, timeout=5)


def test_broker_outage_under_load_loses_nothing(tmp_path: Path) -> None:
    """Catches a worker that crashes, loses or double-applies events, or stays ready while the
    broker does not answer (paused with SIGSTOP), and one that does not recover after it."""
    ports = {"stream": free_port(), "rerank": free_port()}
    with start_services(partitions=2, workdir=str(tmp_path / "svc")) as services, \
            running(services, *worker_commands(ports), env=FAST) as procs:
        for port in ports.values():
            assert wait_status(port, 200, timeout=90), readiness(port)
        paused = False
        try:
            with Load(services, n=2400, rate=400, seed=2) as load:
                time.sleep(1.5)
                os.kill(services.kafka_pid, signal.SIGSTOP)
                paused, down = True, time.monotonic()
                for port in ports.values():
                    assert wait_status(port, 503, timeout=20), readiness(port)
                noticed = time.monotonic() - down
                assert not readiness(ports["stream"])["checks"]["kafka"]["ok"]
                time.sleep(4)
                os.kill(services.kafka_pid, signal.SIGCONT)
                paused, back = False, time.monotonic()
                for port in ports.values():
                    assert wait_status(port, 200, timeout=90), readiness(port)
                print(f"broker outage: both unready after {noticed:.1f}s, ready again "
                      f"{time.monotonic() - back:.1f}s after it resumed")
            assert_applied_once(services, load)
            assert_serves_lists(services)
            assert all(proc.poll() is None for proc in procs)
            logs = stop_and_read_logs(procs)
            assert all("kafka unavailable" in log and "kafka is back" in log for log in logs)
        finally:
            if paused:
                os.kill(services.kafka_pid, signal.SIGCONT)


def test_health_server_answers_each_check_over_http() -> None:
    """Catches /readyz reporting ready with a stale probe, a stuck batch, no partitions or a
    failed service, /healthz depending on readiness, and /metrics lost beside them; the server
    binds the configured address."""
    from streams.config import ConfigError, load_settings
    from streams.errors import KAFKA, FailureKind, ServiceFailure
    from streams.health import HealthState, start_health_server

    now = [1000.0]
    state = HealthState("test", progress_bound=30, probe_bound=15, clock=lambda: now[0])
    settings = load_settings({"STYLESTREAM_METRICS_HOST": "0.0.0.0"})
    server = start_health_server(state, 0, settings.metrics_host)
    port = server.server_port
    try:
        assert server.server_address[0] == "0.0.0.0"
        assert status(port, "/healthz") == 200 and status(port, "/readyz") == 503
        state.record_probe({"kafka": None, "redis": None})
        state.consuming = lambda: True
        assert status(port, "/readyz") == 200
        state.batch_started()
        now[0] += 31
        state.record_probe({"kafka": None, "redis": None})
        body = readiness(port)
        assert not body["ready"] and not body["checks"]["progress"]["ok"]
        state.batch_done()
        assert status(port, "/readyz") == 200
        now[0] += 16  # no probe for longer than probe_bound
        assert not readiness(port)["checks"]["kafka"]["ok"]
        state.record_probe({"kafka": ServiceFailure(KAFKA, FailureKind.TIMEOUT, "k:1", "slow"),
                            "redis": None})
        body = readiness(port)
        assert "timed out" in body["checks"]["kafka"]["detail"] and body["checks"]["redis"]["ok"]
        state.record_probe({"kafka": None, "redis": None})
        state.consuming = lambda: False
        assert status(port, "/readyz") == 503 and status(port, "/healthz") == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"python_info" in answer.read()  # Prometheus exposition beside the probes
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            start_health_server(state, port, "127.0.0.1")  # the port is taken
    finally:
        server.shutdown()
        server.server_close()
    try:
        load_settings({"STYLESTREAM_METRICS_HOST": "0.0.0.0 9100"})
    except ConfigError as exc:
        assert "STYLESTREAM_METRICS_HOST" in str(exc)
    else:
        raise AssertionError("a malformed STYLESTREAM_METRICS_HOST was accepted")
