"""Every command that talks to Kafka or Redis turns a refused, password-protected, silent or
topic-less service into one line on stderr and a distinct exit code (README, "Exit codes").

The services are real: a closed loopback port, a redis-server with ``requirepass``, a
redis-server and a Tansu broker paused with SIGSTOP (they accept connections, never answer), a
Tansu broker without the contract's topics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.demo_catalog import generate_demo_catalog
from scripts.embedded import (
    EmbeddedServices,
    free_port,
    redis_binary,
    start_services,
    tansu_binary,
)
from streams.config import Topics
from streams.errors import FailureKind, ServiceFailure, classify, redact_url
from tests.streaming_helpers import listening

REPO = Path(__file__).resolve().parent.parent
CONNECT, TIMEOUT, AUTH, TOPIC = (k.exit_code for k in (FailureKind.CONNECT, FailureKind.TIMEOUT,
                                                       FailureKind.AUTH,
                                                       FailureKind.UNKNOWN_TOPIC))
PASSWORD = "s3cret-pw"


def cli(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "STYLESTREAM_SERVICE_TIMEOUT": "1",
                                          **env}, timeout=timeout, cwd=REPO)


def assert_one_line(out: subprocess.CompletedProcess, code: int, *needles: str,
                    worker: bool = False) -> str:
    """Exit code ``code``; stderr is one line (for a worker: its last line, after its
    wait-and-retry log lines) holding every needle, and no traceback."""
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == code, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert lines, "nothing on stderr"
    if not worker:
        assert len(lines) == 1, out.stderr[-3000:]
    line = lines[-1]
    for needle in needles:
        assert needle in line, line
    assert PASSWORD not in out.stderr
    return line


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog")
    generate_demo_catalog(path, n_items=20, seed=0)
    return path


@pytest.fixture(scope="module")
def bare_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServices]:
    """A broker whose topics are not the contract's (behavior-events etc. do not exist)."""
    other = Topics(events="o-events", dead_letter="o-dlq", refresh="o-refresh",
                   catalog="o-catalog", recommendations="o-recs")
    with start_services(partitions=1, topics=other,
                        workdir=str(tmp_path_factory.mktemp("bare"))) as svc:
        yield svc


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server that wants a password; yields its URL with a wrong one."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("locked")
    with listening([str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save",
                    "", "--requirepass", "right-one", "--dir", str(workdir)], port,
                   "redis-server", 10):
        yield f"redis://:{PASSWORD}@127.0.0.1:{port}/0"


@pytest.fixture
def paused(tmp_path: Path) -> Iterator[EmbeddedServices]:
    """Broker and Redis stopped with SIGSTOP: connections open, nothing answers."""
    with start_services(partitions=1, workdir=str(tmp_path / "paused")) as svc:
        for pid in (svc.kafka_pid, svc.redis_pid):
            os.kill(pid, signal.SIGSTOP)
        try:
            yield svc
        finally:
            for pid in (svc.kafka_pid, svc.redis_pid):
                os.kill(pid, signal.SIGCONT)


REFUSED_KAFKA = f"127.0.0.1:{free_port()}"
REFUSED_REDIS = f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize("command", [["scores", "u0"], ["recs", "u0"]])
def test_redis_commands_refused_locked_and_silent(command: list[str], locked_redis: str,
                                                 paused: EmbeddedServices) -> None:
    """Catches a Redis command printing a redis-py traceback (or hanging on a paused server)
    instead of one line with the URL, its password hidden, and exit codes 69 / 77 / 75."""
    assert_one_line(cli(*command, env={"STYLESTREAM_REDIS": REFUSED_REDIS}), CONNECT,
                    "Redis", REFUSED_REDIS, "cannot connect", "STYLESTREAM_REDIS")
    assert_one_line(cli(*command, env={"STYLESTREAM_REDIS": locked_redis}), AUTH,
                    "Redis", "authentication failed", ":***@127.0.0.1")
    assert_one_line(cli(*command, env={"STYLESTREAM_REDIS": paused.redis_url}), TIMEOUT,
                    "Redis", paused.redis_url, "timed out")


def test_kafka_commands_refused_silent_and_without_topics(
        catalog: Path, paused: EmbeddedServices, bare_broker: EmbeddedServices) -> None:
    """Catches `topics`, `simulate`, `demo`, `tail` and `web` printing kafka-python or aiokafka
    tracebacks, hanging on a silent broker, or waiting a library's minute-long metadata timeout
    for a missing topic."""
    refused = {"STYLESTREAM_KAFKA": REFUSED_KAFKA, "STYLESTREAM_REDIS": REFUSED_REDIS}
    simulate = ["simulate", "--catalog", str(catalog), "--events", "5"]
    tail = ["tail", "--count", "1"]
    web = ["web", "--port", "0", "--catalog", str(catalog)]
    for command in (["topics"], simulate, ["demo", "--seconds", "1", "--no-model"], tail, web):
        assert_one_line(cli(*command, env=refused), CONNECT, "Kafka", REFUSED_KAFKA,
                        "cannot connect", "STYLESTREAM_KAFKA")
    silent = {"STYLESTREAM_KAFKA": paused.kafka_url, "STYLESTREAM_REDIS": paused.redis_url}
    for command in (["topics"], simulate, tail):
        assert_one_line(cli(*command, env=silent), TIMEOUT, "Kafka", paused.kafka_url,
                        "timed out")
    assert_one_line(cli(*simulate, env=bare_broker.env()), TOPIC, "Kafka", "unknown topic",
                    "behavior-events", "stylestream topics")
    assert_one_line(cli(*tail, env=bare_broker.env()), TOPIC, "unknown topic",
                    "recommendations")


def test_workers_give_up_after_wait_with_one_line(module_services: EmbeddedServices,
                                                  locked_redis: str,
                                                  bare_broker: EmbeddedServices) -> None:
    """Catches a worker that crashes with a Faust/aiokafka traceback, or waits for ever when
    told `--wait 1`, and one that retries a wrong password instead of stopping at once."""
    refused = {"STYLESTREAM_KAFKA": REFUSED_KAFKA, "STYLESTREAM_REDIS": module_services.redis_url}
    locked = {"STYLESTREAM_KAFKA": module_services.kafka_url, "STYLESTREAM_REDIS": locked_redis}
    for worker in ("stream", "rerank"):
        out = cli(worker, "--wait", "1", env=refused)
        assert_one_line(out, CONNECT, "Kafka", REFUSED_KAFKA, "cannot connect", worker=True)
        assert "waiting for services (attempt 1)" in out.stderr
        out = cli(worker, "--wait", "30", env=locked)
        assert_one_line(out, AUTH, "Redis", "authentication failed", worker=True)
        assert "attempt 2" not in out.stderr  # a password is not retried
        assert_one_line(cli(worker, "--wait", "1", env=bare_broker.env()), TOPIC,
                        "unknown topic", "rec-refresh", worker=True)


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[str]:
    """Tansu with ``--authentication``: SASL/SCRAM required, and no user it accepts."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with listening([str(tansu_binary()), "broker", "--listener-url", url,
                    "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
                    "--authentication"], port, "Tansu broker", 20.0, cwd=tmp_path):
        yield f"127.0.0.1:{port}"


def test_kafka_login_refused_is_an_authentication_failure(sasl_broker: str) -> None:
    """Catches a refused SASL login (Tansu with --authentication) reported as a connection
    problem, or retried by a worker, instead of one line with exit code 77."""
    env = {"STYLESTREAM_KAFKA": sasl_broker, "STYLESTREAM_REDIS": REFUSED_REDIS,
           "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "STYLESTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "STYLESTREAM_KAFKA_SASL_USERNAME": "svc", "STYLESTREAM_KAFKA_SASL_PASSWORD": PASSWORD}
    assert_one_line(cli("topics", env=env), AUTH, "Kafka", sasl_broker,
                    "authentication failed")
    out = cli("rerank", "--wait", "30", env=env)
    assert_one_line(out, AUTH, "Kafka", "authentication failed", worker=True)
    assert "attempt 2" not in out.stderr


def test_debug_shows_the_traceback() -> None:
    """Catches --debug losing the traceback that the one-line message hides."""
    out = cli("--debug", "scores", "u0", env={"STYLESTREAM_REDIS": REFUSED_REDIS})
    assert out.returncode == CONNECT
    assert "Traceback" in out.stderr and "redis.exceptions.ConnectionError" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("stylestream scores: Redis at")


def test_classification_of_library_exceptions() -> None:
    """Catches a client exception mapped to the wrong kind (hence the wrong exit code), and a
    password leaking into the message."""
    import aiokafka.errors as ak
    import kafka.errors as kp
    import redis.exceptions as rx

    cases = [(rx.ConnectionError("refused"), "Redis", FailureKind.CONNECT),
             (rx.TimeoutError("Timeout reading"), "Redis", FailureKind.TIMEOUT),
             (rx.AuthenticationError("invalid password"), "Redis", FailureKind.AUTH),
             (rx.ResponseError("NOAUTH Authentication required."), "Redis", FailureKind.AUTH),
             (ak.NoBrokersAvailable(), "Kafka", FailureKind.CONNECT),
             (kp.KafkaTimeoutError("Failed to update metadata"), "Kafka", FailureKind.TIMEOUT),
             (ak.KafkaConnectionError("Unable to bootstrap from x"), "Kafka",
              FailureKind.CONNECT),
             (ak.UnknownTopicOrPartitionError(), "Kafka", FailureKind.UNKNOWN_TOPIC),
             (kp.SaslAuthenticationFailedError(), "Kafka", FailureKind.AUTH),
             (ak.SaslAuthenticationFailed(), "Kafka", FailureKind.AUTH),
             (kp.UnsupportedSaslMechanismError(), "Kafka", FailureKind.AUTH)]
    for exc, service, kind in cases:
        try:  # wrapped twice, as asyncio.run and the libraries do
            try:
                raise exc
            except Exception as inner:
                raise RuntimeError("wrapper") from inner
        except RuntimeError as outer:
            found = classify(outer, "k:9092", f"redis://:{PASSWORD}@h:6379/0")
        assert isinstance(found, ServiceFailure), exc
        assert (found.service, found.kind) == (service, kind), exc
        assert PASSWORD not in found.line()
    assert classify(ValueError("not a service")) is None
    assert redact_url(f"redis://user:{PASSWORD}@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("h1:9092,h2:9092") == "h1:9092,h2:9092"


def test_a_port_taken_before_the_service_binds_it_gets_a_fresh_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches the embedded services failing for good when a free port is taken between
    choosing it and binding it (another process's connection got it first: seen in CI as
    "redis-server exited with code 1 before it was ready"); they start again on fresh ports."""
    import socket

    import scripts.embedded as embedded

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    busy = taken.getsockname()[1]
    real = embedded.free_port
    handed = iter([busy, busy])  # the broker's and Redis's first ports are both taken
    monkeypatch.setattr(embedded, "free_port", lambda: next(handed, None) or real())
    services = embedded.start_services(partitions=1, timeout=30.0)
    try:
        assert str(busy) not in services.kafka_url and str(busy) not in services.redis_url
        import redis

        client = redis.Redis.from_url(services.redis_url)
        assert client.ping()
        client.close()
    finally:
        services.stop()
        taken.close()
