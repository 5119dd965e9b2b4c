"""The replay protocol through the live system: the log through Kafka, the real workers, the lists.

Every event before the cut is produced to ``behavior-events`` (key = user id, the contract's
JSON, ``event_id`` = the event's position in the log, epoch-second timestamps) in time order;
the real ``stylestream stream`` and ``stylestream rerank`` processes run against the given
broker and Redis (the rerank worker with the trained final ranker and ``--event-clock``, since
the log's times are not today's); when every shopper's list in Redis (``rec:{user}``) is
built from the shopper's newest replayed event, the lists are read back. They are what a
subscriber of ``recommendations`` last received.

The caller owns the services (``stylestream evaluate`` starts embedded ones); this module
only talks to them over sockets and runs the workers as subprocesses.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from models.datasets import Interaction
from models.progress import progress
from serving.worker import REC_KEY_PREFIX
from streams.config import Settings
from streams.redis_client import sync_client
from streams.security import kafka_client_kwargs, redis_client_kwargs

log = logging.getLogger(__name__)


class ReplayTimeout(RuntimeError):
    """The workers did not publish a list for every shopper in time."""


def event_json(n: int, event: Interaction) -> bytes:
    return json.dumps({"event_id": f"replay-{n}", "user_id": event.user,
                       "item_id": event.item, "behavior": event.behavior,
                       "timestamp": event.t}, separators=(",", ":")).encode()


def produce_log(events: Sequence[Interaction], settings: Settings, topic: str,
                show_progress: bool = True) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20,
                             batch_size=256 * 1024, acks=1,
                             **kafka_client_kwargs(settings, "kafka-python"))
    try:
        for n, event in enumerate(progress(events, desc="produce", unit="ev",
                                       disable=not show_progress)):
            producer.send(topic, key=event.user.encode(), value=event_json(n, event))
        producer.flush()
    finally:
        producer.close()


def _published(client: Any, users: Sequence[str]) -> list[dict | None]:
    """Each shopper's ``rec:{user}`` message (None when absent), read in pipelined chunks (a
    single Redis or a cluster alike)."""
    out: list[dict | None] = []
    for start in range(0, len(users), 500):
        pipe = client.pipeline(transaction=False)
        for user in users[start: start + 500]:
            pipe.get(REC_KEY_PREFIX + user)
        out.extend(None if raw is None else json.loads(raw) for raw in pipe.execute())
    return out


def _stale(client: Any, newest: Mapping[str, float]) -> list[str]:
    users = list(newest)
    return [user for user, message in zip(users, _published(client, users), strict=True)
            if message is None or message["source_event_time"] < newest[user] - 1e-6]


def read_lists(client: Any, users: Sequence[str]) -> dict[str, list[str]]:
    return {user: [] if message is None else [i["item_id"] for i in message["items"]]
            for user, message in zip(users, _published(client, list(users)), strict=True)}


def replay_live(before: Sequence[Interaction], settings: Settings, *,
                rerank_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                timeout: float = 900.0, show_progress: bool = True,
                log_dir: Path | None = None) -> dict[str, list[str]]:
    """Replay ``before`` through the workers on the services of ``settings`` (URLs and
    security); every shopper's last list (by user id). :class:`ReplayTimeout` when no
    shopper's list is completed for ``timeout`` seconds (a log of any length may take as long
    as the workers need while they keep up)."""
    newest: dict[str, float] = {}
    for event in before:
        newest[event.user] = max(newest.get(event.user, event.t), event.t)
    full_env = dict(os.environ, STYLESTREAM_KAFKA=settings.kafka_bootstrap,
                    STYLESTREAM_REDIS=settings.redis, **(env or {}))
    commands = [["stream"], ["rerank", "--event-clock", "--no-catalog-updates", *rerank_args]]
    logs = []
    procs = []
    try:
        for command in commands:
            target = (open(log_dir / f"replay-{command[0]}.log", "wb")  # noqa: SIM115
                      if log_dir else subprocess.DEVNULL)
            if log_dir:
                logs.append(target)
            procs.append(subprocess.Popen([sys.executable, "-m", "scripts.cli", *command],
                                          env=full_env, stdout=target,
                                          stderr=subprocess.STDOUT))
        produce_log(before, settings, settings.topics.events, show_progress)
        client = sync_client(settings.redis, decode_responses=True,
                             **redis_client_kwargs(settings))
        deadline = time.monotonic() + timeout
        bar = progress(total=len(newest), desc="lists", unit="shopper",
                       disable=not show_progress)
        done = 0
        while True:
            for proc, command in zip(procs, commands, strict=True):
                if proc.poll() is not None:
                    where = f" {log_dir / f'replay-{command[0]}.log'}" if log_dir else ""
                    raise RuntimeError(f"`stylestream {command[0]}` exited with {proc.returncode}"
                                       f" during the replay (see its log{where})")
            stale = _stale(client, newest)
            if len(newest) - len(stale) > done:
                deadline = time.monotonic() + timeout
            bar.update(len(newest) - len(stale) - done)
            done = len(newest) - len(stale)
            if not stale:
                break
            if time.monotonic() > deadline:
                raise ReplayTimeout(f"{len(stale)} of {len(newest)} shoppers have no list built "
                                    f"from their newest event, and none was completed in the "
                                    f"last {timeout:.0f} s (e.g. {stale[:3]})")
            time.sleep(1.0)
        bar.close()
        return read_lists(client, sorted(newest))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in logs:
            handle.close()
