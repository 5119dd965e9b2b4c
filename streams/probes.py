"""Is Kafka there, is Redis there: short probes, and a bounded-backoff wait for both.

A probe answers within about ``timeout`` seconds whatever the service does (refuses, hangs,
asks for a password) and raises a :class:`~streams.errors.ServiceFailure` naming what is
wrong. Workers call :func:`wait_for_services` at start (a log line per attempt, exponential
backoff capped at ``cap`` seconds) and :func:`probe_services` periodically for ``/readyz``;
commands call the probes before they produce or consume, so that a missing topic is reported at
once instead of after a client library's metadata timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from streams.config import Settings, strip_scheme
from streams.errors import KAFKA, REDIS, FailureKind, ServiceFailure, classify
from streams.security import kafka_client_kwargs, redis_client_kwargs

log = logging.getLogger(__name__)


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for part in strip_scheme(bootstrap).split(","):
        host, _, port = part.strip().rpartition(":")
        hosts.append((host.strip("[]") or "localhost", int(port or 9092)))
    return hosts


async def check_kafka(bootstrap: str, topics: Iterable[str] = (), timeout: float = 5.0,
                      client_kwargs: dict[str, Any] | None = None) -> None:
    """Raise :class:`ServiceFailure` unless a broker of ``bootstrap`` answers a metadata request
    within ``timeout`` seconds and knows every topic of ``topics``.

    A plain TCP connect comes first: it tells a refused or unreachable address (CONNECT) from a
    broker that accepts connections but does not answer (TIMEOUT), which the Kafka clients
    report alike. The metadata request then goes over one aiokafka connection with
    ``client_kwargs`` (TLS, SASL: :func:`streams.security.kafka_client_kwargs`), so that a
    refused login surfaces as AUTH instead of a client's generic "unable to bootstrap".
    """
    from aiokafka.cluster import ClusterMetadata
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    failures: list[BaseException] = []
    for host, port in _hosts(bootstrap):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (TimeoutError, OSError) as exc:
            failures.append(exc)
            continue
        writer.close()
        break
    else:
        timed_out = all(isinstance(f, TimeoutError) for f in failures)
        last = failures[-1]
        raise ServiceFailure(KAFKA, FailureKind.TIMEOUT if timed_out else FailureKind.CONNECT,
                             bootstrap, f"connect timed out after {timeout:g}s" if timed_out
                             else f"{type(last).__name__}: {last}")
    conn = None
    try:
        conn = await asyncio.wait_for(create_conn(
            host, port, client_id="stylestream-probe",
            request_timeout_ms=max(1, int(timeout * 1000)), **(client_kwargs or {})),
            timeout * 2)
        metadata = await asyncio.wait_for(conn.send(MetadataRequest([])), timeout * 2)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a ServiceFailure
        found = classify(exc, kafka_url=bootstrap)
        if found is not None and found.kind is FailureKind.AUTH:
            raise found from exc
        if conn is None and (client_kwargs or {}).get("sasl_mechanism") \
                and isinstance(exc, KeyError):
            # aiokafka's SCRAM client reads the server-final message's verifier ("v"); a
            # broker that refuses the login sends an error ("e=...") there instead
            raise ServiceFailure(KAFKA, FailureKind.AUTH, bootstrap,
                                 "the broker ended the SASL exchange without accepting the "
                                 f"login (missing {exc})") from exc
        if isinstance(exc, TimeoutError) or (found is not None
                                              and found.kind is FailureKind.TIMEOUT):
            raise ServiceFailure(KAFKA, FailureKind.TIMEOUT, bootstrap,
                                 f"no metadata within {timeout:g}s") from exc
        raise ServiceFailure(KAFKA, FailureKind.CONNECT, bootstrap,
                             f"{type(exc).__name__}: {exc}") from exc
    finally:
        if conn is not None:
            conn.close()
    cluster = ClusterMetadata()
    cluster.update_metadata(metadata)
    missing = sorted(set(topics) - set(cluster.topics()))
    if missing:
        raise ServiceFailure(KAFKA, FailureKind.UNKNOWN_TOPIC, bootstrap,
                             "missing " + ", ".join(missing))


async def check_redis(url: str, timeout: float = 5.0,
                      client_kwargs: dict[str, Any] | None = None) -> None:
    """Raise :class:`ServiceFailure` unless Redis at ``url`` answers ``PING`` within
    ``timeout`` seconds (with the credentials of the URL or ``client_kwargs``:
    :func:`streams.security.redis_client_kwargs`)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                     **(client_kwargs or {}))
    try:
        await asyncio.wait_for(client.ping(), timeout * 2)
    except TimeoutError as exc:
        raise ServiceFailure(REDIS, FailureKind.TIMEOUT, url,
                             f"no answer within {timeout:g}s") from exc
    except Exception as exc:  # noqa: BLE001 - every failure becomes a ServiceFailure
        found = classify(exc, redis_url=url)
        raise (found or ServiceFailure(REDIS, FailureKind.CONNECT, url,
                                       f"{type(exc).__name__}: {exc}")) from exc
    finally:
        await client.aclose()


async def probe_services(settings: Settings, topics: Iterable[str] = (),
                         timeout: float | None = None) -> dict[str, ServiceFailure | None]:
    """Probe Kafka and Redis concurrently: ``{"kafka": failure or None, "redis": …}``."""
    timeout = settings.service_timeout if timeout is None else timeout
    results = await asyncio.gather(
        check_kafka(settings.kafka_bootstrap, topics, timeout,
                    kafka_client_kwargs(settings, "aiokafka")),
        check_redis(settings.redis, timeout, redis_client_kwargs(settings)),
        return_exceptions=True)
    out: dict[str, ServiceFailure | None] = {}
    for name, result in zip(("kafka", "redis"), results, strict=True):
        if isinstance(result, ServiceFailure) or result is None:
            out[name] = result
        elif isinstance(result, BaseException):
            raise result
    return out


async def check_services(settings: Settings, topics: Iterable[str] = (),
                         timeout: float | None = None) -> None:
    """Raise the first :class:`ServiceFailure` of :func:`probe_services` (Kafka before Redis)."""
    for failure in (await probe_services(settings, topics, timeout)).values():
        if failure is not None:
            raise failure


async def wait_for_services(check: Callable[[], Awaitable[None]], what: str,
                            max_wait: float | None = None, first_delay: float = 0.5,
                            cap: float = 10.0,
                            on_failure: Callable[[ServiceFailure], None] | None = None) -> int:
    """Call ``check`` until it succeeds; returns the number of attempts.

    Between attempts: ``first_delay`` seconds, doubled each time up to ``cap``; one warning line
    per failed attempt. Authentication failures are not retried (waiting does not fix a
    password); otherwise the last failure is raised once ``max_wait`` seconds have passed
    (``None``: wait for ever).
    """
    started = time.monotonic()
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            await check()
        except ServiceFailure as failure:
            if on_failure is not None:
                on_failure(failure)
            if failure.kind is FailureKind.AUTH:
                raise
            left = None if max_wait is None else max_wait - (time.monotonic() - started)
            if left is not None and left <= 0:
                raise
            pause = delay if left is None else min(delay, left)
            log.warning("%s: waiting for services (attempt %d): %s; next try in %.1fs",
                        what, attempt, failure.line(), pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, cap)
            continue
        if attempt > 1:
            log.info("%s: Kafka and Redis are ready after %d attempts (%.1fs)", what, attempt,
                     time.monotonic() - started)
        return attempt


def preflight(settings: Settings, topics: Iterable[str] = (), kafka: bool = True,
              redis: bool = False) -> None:
    """Synchronous check for one-shot commands: raise the first :class:`ServiceFailure` of the
    services asked for (within ``settings.service_timeout`` each)."""

    async def run() -> None:
        if kafka:
            await check_kafka(settings.kafka_bootstrap, topics, settings.service_timeout,
                              kafka_client_kwargs(settings, "aiokafka"))
        if redis:
            await check_redis(settings.redis, settings.service_timeout,
                              redis_client_kwargs(settings))

    asyncio.run(run())
