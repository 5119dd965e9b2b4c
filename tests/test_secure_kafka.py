"""Kafka over TLS (and SASL as far as the embedded broker allows), against a real Tansu broker.

TLS: Tansu behind a TLS terminator (tests/secure_services.py says why Tansu cannot serve TLS
itself). The product's helper (:func:`streams.security.kafka_client_kwargs`) configures
kafka-python, aiokafka and the Faust ingest worker; the workers then run the whole ingest →
rerank path over TLS Kafka and TLS Redis. What breaks if these fail: a client that ignores
``STYLESTREAM_KAFKA_*``, TLS without certificate verification, or a worker that cannot start
against a secured cluster.

SASL: Tansu 0.6.0 offers SCRAM only when started with ``--authentication``, and then no user
can be created (``tansu user create`` is refused with NotAuthenticated; users created on a
broker without it are not found after a restart on the same S3 storage: ``e=unknown-user``).
So the SCRAM tests show the clients carrying out the configured SCRAM exchange with the real
broker up to the broker's verdict on the user, and that without SASL the broker refuses them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaProducer
from kafka.errors import KafkaError

from scripts.embedded import free_port, stop_processes, tansu_binary, wait_for_port
from streams.config import load_settings
from streams.security import kafka_client_kwargs, redis_client_kwargs
from tests.secure_services import Pki, ServicesEnv, make_pki, redis_server, tls_kafka
from tests.streaming_helpers import event_bytes, produce, read_until, running

APP_PASSWORD = "app-Pw-e2e-77"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_env(kafka_bootstrap: str, pki: Pki, **extra: str) -> dict[str, str]:
    return {"STYLESTREAM_KAFKA": kafka_bootstrap, "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
            "STYLESTREAM_KAFKA_SSL_CAFILE": str(pki.ca), **extra}


def refused(bootstrap: str, settings_env: dict[str, str]) -> KafkaError:
    """The error a kafka-python producer configured from ``settings_env`` gets (short waits)."""
    kwargs = kafka_client_kwargs(load_settings(settings_env), "kafka-python")
    with pytest.raises(KafkaError) as failure:
        producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=2500,
                                 request_timeout_ms=2500, bootstrap_timeout_ms=4000,
                                 **kwargs)
        try:
            producer.send("rec-refresh", b"x").get(timeout=3)
        finally:
            producer.close(timeout=1)
    return failure.value


def test_kafka_python_and_aiokafka_over_tls(tmp_path: Path, pki: Pki) -> None:
    """Records produced with kafka-python come back through aiokafka (and the reverse), both
    configured only by the settings; a client trusting another CA is refused."""
    with tls_kafka(tmp_path / "kafka", pki) as kafka:
        services = ServicesEnv(tls_env(kafka.bootstrap, pki))
        settings = load_settings(services.env())
        sent = [(f"k{k}".encode(), f"tls-{k}".encode()) for k in range(20)]
        produce(services, "catalog-updates", sent)  # kafka-python, over TLS

        async def via_aiokafka() -> list[bytes]:
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap,
                                        **kafka_client_kwargs(settings, "aiokafka"))
            await producer.start()
            try:
                await producer.send_and_wait("catalog-updates", b"from-aiokafka", key=b"a")
            finally:
                await producer.stop()
            consumer = AIOKafkaConsumer("catalog-updates", bootstrap_servers=kafka.bootstrap,
                                        auto_offset_reset="earliest", group_id=None,
                                        **kafka_client_kwargs(settings, "aiokafka"))
            await consumer.start()
            got: list[bytes] = []
            try:
                deadline = time.monotonic() + 30
                while len(got) < 21 and time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=500)
                    got += [r.value for part in batches.values() for r in part]
            finally:
                await consumer.stop()
            return got

        got = asyncio.run(via_aiokafka())
        assert sorted(got) == sorted([v for _, v in sent] + [b"from-aiokafka"])
        back = read_until(services, "catalog-updates", lambda r: len(r) >= 21, timeout=30)
        assert b"from-aiokafka" in {r.value for r in back}

        refused(kafka.bootstrap, tls_env(kafka.bootstrap, pki,
                                         STYLESTREAM_KAFKA_SSL_CAFILE=str(pki.other_ca)))


def test_mutual_tls_needs_the_client_certificate(tmp_path: Path, pki: Pki) -> None:
    """With a broker that requires client certificates, STYLESTREAM_KAFKA_SSL_CERTFILE/_KEYFILE
    get the client in; without them the same client is refused."""
    with tls_kafka(tmp_path / "kafka", pki, client_certs=True) as kafka:
        with_cert = ServicesEnv(tls_env(kafka.bootstrap, pki,
                                        STYLESTREAM_KAFKA_SSL_CERTFILE=str(pki.client_cert),
                                        STYLESTREAM_KAFKA_SSL_KEYFILE=str(pki.client_key)))
        produce(with_cert, "rec-refresh", [(b"u", b"mtls")])
        assert [r.value for r in read_until(with_cert, "rec-refresh", bool, 30)] == [b"mtls"]
        topics = subprocess.run([sys.executable, "-m", "scripts.cli", "topics"],
                                env={**os.environ, **with_cert.env()}, capture_output=True,
                                text=True, timeout=60)  # the CLI's admin client, mutual TLS
        assert topics.returncode == 0 and "topics ready" in topics.stdout, topics.stderr
        refused(kafka.bootstrap, tls_env(kafka.bootstrap, pki))


def test_ingest_and_rerank_workers_over_tls(tmp_path: Path, pki: Pki) -> None:
    """The product path over secured services only: events produced over TLS Kafka, the Faust
    ingest worker and the rerank worker connected by the settings to TLS Kafka and to a TLS
    Redis with an ACL user; every shopper gets a Top-5 on the recommendations topic, and
    ``stylestream scores`` reads the decayed scores back over TLS."""
    acl = ("user default off", f"user app on >{APP_PASSWORD} ~* &* +@all")
    with tls_kafka(tmp_path / "kafka", pki) as kafka, \
            redis_server(tmp_path / "redis", acl=acl, tls=pki) as store:
        env = tls_env(kafka.bootstrap, pki,
                      STYLESTREAM_REDIS=store.url, STYLESTREAM_REDIS_CA_FILE=str(pki.ca),
                      STYLESTREAM_REDIS_CERTFILE=str(pki.client_cert),
                      STYLESTREAM_REDIS_KEYFILE=str(pki.client_key),
                      STYLESTREAM_REDIS_USERNAME="app", STYLESTREAM_REDIS_PASSWORD=APP_PASSWORD)
        services = ServicesEnv(env)
        rng = random.Random(3)
        now = time.time()
        users = [f"tls-shopper-{k}" for k in range(6)]
        records = [(u.encode(), event_bytes(f"e{k}", u, f"item-{rng.randrange(30)}",
                                            rng.choice(["view", "cart", "favorite"]),
                                            now - rng.uniform(0, 3600)))
                   for k, u in enumerate(rng.choice(users) for _ in range(300))]
        latest: dict[str, dict] = {}

        def all_served(recs: list) -> bool:
            for rec in recs:
                latest[rec.key.decode()] = json.loads(rec.value)
            return set(latest) >= set(users)

        with running(services, ["stream"], ["rerank"]) as procs:
            produce(services, "behavior-events", records)
            read_until(services, "recommendations", all_served, timeout=120)
            alive = [p.poll() is None for p in procs]
        assert all(alive), [p.stderr.read().decode()[-2000:] for p in procs if p.stderr]
        assert set(latest) >= set(users)
        for user, msg in latest.items():  # early lists may be short: few events seen yet
            assert msg["user_id"] == user and 0 < len(msg["items"]) <= 5
            assert msg["generated_at"] >= msg["source_event_time"]
        out = subprocess.run([sys.executable, "-m", "scripts.cli", "scores", users[0]],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) and all(v > 0 for v in json.loads(out.stdout).values())
        settings = load_settings(env)
        client = redis.Redis.from_url(store.url, **redis_client_kwargs(settings))
        assert client.exists(f"rec:{users[0]}")


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[str]:
    """Tansu started with ``--authentication`` (SASL/SCRAM required) on a free port."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with (tmp_path / "tansu.log").open("ab") as log:
        proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", url,
                                 "--advertised-listener-url", url, "--storage-engine",
                                 "memory://tansu/", "--authentication"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 20.0, proc, "Tansu broker")
        yield f"127.0.0.1:{port}"
    finally:
        stop_processes(proc, timeout=5.0)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_settings_drive_the_exchange_with_a_real_broker(sasl_broker: str,
                                                              mechanism: str) -> None:
    """kafka-python configured by the settings runs the SCRAM exchange with Tansu: handshake
    on the configured mechanism, client-first message with the configured user, and the
    broker's own verdict on that user (``e=unknown-user``: Tansu 0.6.0 cannot hold users, see
    the module docstring). Without SASL the same broker refuses the client outright."""
    env = {"STYLESTREAM_KAFKA": sasl_broker,
           "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "STYLESTREAM_KAFKA_SASL_MECHANISM": mechanism,
           "STYLESTREAM_KAFKA_SASL_USERNAME": "svc-ingest",
           "STYLESTREAM_KAFKA_SASL_PASSWORD": "svc-Pw-3"}
    handler = Captured()
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.addHandler(handler)
    kafka_log.setLevel(logging.DEBUG)
    try:
        refused(sasl_broker, env)
    finally:
        kafka_log.removeHandler(handler)
        kafka_log.setLevel(level)
    text = "\n".join(handler.lines)
    assert f"SaslHandshakeResponse(version=1, error_code=0, mechanisms=['{mechanism}'])" in text
    assert "n,,n=svc-ingest,r=" in text  # the SCRAM client-first message, our user
    assert "e=unknown-user" in text  # the broker looked the user up and answered
    assert "svc-Pw-3" not in text  # SCRAM never sends the password itself
    refused(sasl_broker, {"STYLESTREAM_KAFKA": sasl_broker})


def test_aiokafka_and_faust_get_the_same_sasl_settings(sasl_broker: str) -> None:
    """aiokafka (rerank worker) and Faust (ingest worker) configured by the same helper reach
    the broker's SCRAM exchange too: aiokafka fails on the broker's verdict, not earlier."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    env = {"STYLESTREAM_KAFKA": sasl_broker,
           "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "STYLESTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "STYLESTREAM_KAFKA_SASL_USERNAME": "svc-rerank",
           "STYLESTREAM_KAFKA_SASL_PASSWORD": "svc-Pw-4"}
    settings = load_settings(env)
    aio = kafka_client_kwargs(settings, "aiokafka")
    faust_auth = credentials_to_aiokafka_auth(
        kafka_client_kwargs(settings, "faust")["broker_credentials"])
    assert {k: faust_auth[k] for k in aio if k != "ssl_context"} == \
        {k: v for k, v in aio.items() if k != "ssl_context"}

    async def start(**auth: object) -> BaseException:
        producer = AIOKafkaProducer(bootstrap_servers=sasl_broker, request_timeout_ms=3000,
                                    **auth)
        try:
            await asyncio.wait_for(producer.start(), 15)
        except Exception as exc:  # noqa: BLE001 - the failure is what is examined
            return exc
        finally:
            await producer.stop()
        raise AssertionError("the broker accepted a user it cannot know")

    # aiokafka's SCRAM client fails reading the server-final message, which carries the
    # broker's error (e=unknown-user) instead of a verifier (v=): the exchange ran to its end
    failure = asyncio.run(start(**faust_auth))
    assert isinstance(failure, KeyError) and failure.args == ("v",), repr(failure)
    assert "svc-Pw-4" not in repr(failure)
    # without SASL the broker closes the connection before any exchange
    assert isinstance(asyncio.run(start()), KafkaConnectionError)


def test_settings_refuse_half_configured_security(tmp_path: Path, pki: Pki) -> None:
    """Every inconsistent combination is a ConfigError naming the variable, never a client
    that silently connects in clear text."""
    from streams.config import ConfigError

    cases = {
        "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": {"STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"},
        "STYLESTREAM_KAFKA_SASL_MECHANISM": {"STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                             "STYLESTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"},
        "STYLESTREAM_KAFKA_SASL_USERNAME and": {
            "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
        "does not authenticate": {"STYLESTREAM_KAFKA_SASL_USERNAME": "u",
                                  "STYLESTREAM_KAFKA_SASL_PASSWORD": "p"},
        "does not use TLS": {"STYLESTREAM_KAFKA_SSL_CAFILE": str(pki.ca)},
        "STYLESTREAM_KAFKA_SSL_CERTFILE='": {"STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                                             "STYLESTREAM_KAFKA_SSL_CERTFILE": "/nonexistent"},
        "STYLESTREAM_KAFKA_SSL_KEYFILE needs": {
            "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
            "STYLESTREAM_KAFKA_SSL_KEYFILE": str(pki.client_key)},
        "not a rediss:// URL": {"STYLESTREAM_REDIS": "redis://h:1/0",
                                "STYLESTREAM_REDIS_CA_FILE": str(pki.ca)},
        "STYLESTREAM_REDIS_USERNAME needs": {"STYLESTREAM_REDIS_USERNAME": "app"},
        "in one place": {"STYLESTREAM_REDIS": "redis://a:b@h:1/0",
                         "STYLESTREAM_REDIS_PASSWORD": "c"},
    }
    for expected, env in cases.items():
        with pytest.raises(ConfigError, match=expected.replace("?", r"\?")):
            load_settings(env)
    settings = load_settings({"STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                              "STYLESTREAM_KAFKA_SASL_MECHANISM": "scram-sha-512",
                              "STYLESTREAM_KAFKA_SASL_USERNAME": "u",
                              "STYLESTREAM_KAFKA_SASL_PASSWORD": "Hidden-Pw",
                              "STYLESTREAM_KAFKA_SSL_CAFILE": str(pki.ca)})
    assert settings.kafka_security.protocol == "SASL_SSL"
    assert "Hidden-Pw" not in repr(settings)
    kwargs = kafka_client_kwargs(settings, "kafka-python")
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["ssl_context"].check_hostname and kwargs["ssl_context"].verify_mode == 2
