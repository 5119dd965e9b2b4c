"""Helpers for end-to-end tests: worker subprocesses and topic readers over real sockets."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from kafka import KafkaConsumer, KafkaProducer

from scripts.embedded import EmbeddedServices, stop_processes, wait_for_port
from streams.config import load_settings
from streams.redis_client import sync_client
from streams.security import kafka_client_kwargs


@contextlib.contextmanager
def running(services: EmbeddedServices, *commands: list[str],
            env: dict[str, str] | None = None) -> Iterator[list[subprocess.Popen]]:
    """Run ``stylestream <command>`` processes against ``services``; stop them afterwards."""
    full_env = dict(os.environ, **services.env(), **(env or {}))
    procs = [subprocess.Popen([sys.executable, "-m", "scripts.cli", *cmd], env=full_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for cmd in commands]
    try:
        yield procs
    finally:
        stop_processes(*procs)


@contextlib.contextmanager
def listening(argv: list[str], port: int, name: str, timeout: float, stop_timeout: float = 5.0,
              **popen: object) -> Iterator[subprocess.Popen]:
    """``argv`` as a process, yielded once it accepts connections on loopback ``port``
    (stdout/stderr discarded unless ``popen`` says otherwise); stopped on exit."""
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    proc = subprocess.Popen(argv, **popen)  # type: ignore[call-overload]
    try:
        wait_for_port("127.0.0.1", port, timeout, proc, name)
        yield proc
    finally:
        stop_processes(proc, timeout=stop_timeout)


def flush_redis(url: str) -> None:
    """Empty a Redis (every node of a cluster) and forget its loaded scripts."""
    client = sync_client(url)
    client.flushall()
    client.script_flush()
    client.close()


def client_kwargs(services: EmbeddedServices) -> dict:
    """The SASL/TLS arguments the product's helper derives from ``services.env()``."""
    return kafka_client_kwargs(load_settings(services.env()), "kafka-python")


def produce(services: EmbeddedServices, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=services.kafka_url, linger_ms=5,
                             **client_kwargs(services))
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def event_bytes(event_id: str, user: str, item: str, behavior: str, t: float) -> bytes:
    return json.dumps({"event_id": event_id, "user_id": user, "item_id": item,
                       "behavior": behavior, "timestamp": t}).encode()


def read_until(services: EmbeddedServices, topic: str, done: Callable[[list], bool],
               timeout: float = 60.0) -> list:
    """Read ``topic`` from the beginning until ``done(records)`` or the timeout."""
    consumer = KafkaConsumer(topic, bootstrap_servers=services.kafka_url,
                             auto_offset_reset="earliest", consumer_timeout_ms=500,
                             **client_kwargs(services))
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(records):
            records.extend(consumer)
    finally:
        consumer.close()
    return records


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
