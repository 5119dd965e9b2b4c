"""``/metrics``, ``/healthz`` and ``/readyz`` of a worker, from one small HTTP server.

* ``/healthz`` — 200 while the process serves HTTP (liveness: restart me only if this fails).
* ``/readyz`` — 200 when the worker is connected to Kafka and Redis (the last probe, at most
  ``probe_bound`` seconds old, succeeded), consumes (has partitions assigned) and makes progress
  (no batch has been in flight, and the consume loop has not been silent, for more than
  ``progress_bound`` seconds); else 503. The JSON body says which check failed.
* anything else — Prometheus exposition (``prometheus_client.make_wsgi_app``).

The worker's event loop writes a :class:`HealthState` (plain attribute updates); the server
thread only reads it, so an answer never waits on the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from streams.config import ConfigError, Settings
from streams.errors import ServiceFailure, classify
from streams.probes import probe_services

log = logging.getLogger(__name__)

#: A batch in flight (or a consume loop silent) for longer than this makes the worker unready.
DEFAULT_PROGRESS_BOUND = 30.0
#: Seconds between two service probes of a worker.
PROBE_INTERVAL = 2.0


@dataclass
class HealthState:
    """What ``/readyz`` reports; updated by the worker, read by the server thread."""

    worker: str
    progress_bound: float = DEFAULT_PROGRESS_BOUND
    probe_bound: float = 15.0
    clock: Callable[[], float] = time.monotonic
    #: per service ("kafka", "redis"): None when the last probe succeeded, else the failure text
    services: dict[str, str | None] = field(
        default_factory=lambda: {"kafka": "not probed yet", "redis": "not probed yet"})
    probed_at: float | None = None
    #: returns whether partitions are assigned (set by the worker once its consumer exists)
    consuming: Callable[[], bool] | None = None
    busy_since: float | None = None
    loop_seen: float | None = None  # last iteration of a consume loop that polls (rerank)

    def record_probe(self, results: dict[str, ServiceFailure | None]) -> None:
        for name, failure in results.items():
            self._set(name, None if failure is None else failure.line())
        self.probed_at = self.clock()

    def record_failure(self, failure: ServiceFailure) -> None:
        """A failure seen by the worker itself (between probes)."""
        self._set(failure.service.lower(), failure.line())

    def record_exception(self, exc: BaseException, settings: Settings) -> None:
        """:meth:`record_failure` of ``exc`` when it is a Kafka or Redis failure
        (:func:`streams.errors.classify`); anything else is not the services' state."""
        failure = classify(exc, settings.kafka_bootstrap, settings.redis)
        if failure is not None:
            self.record_failure(failure)

    def _set(self, name: str, failure: str | None) -> None:
        """Record one service's state; log a line when it changes (not once per probe)."""
        before = self.services.get(name)
        self.services[name] = failure
        if failure is not None and before is None:
            log.warning("%s: %s unavailable: %s", self.worker, name, failure)
        elif failure is None and before is not None and self.probed_at is not None:
            # a warning too: it closes the "unavailable" line, and workers often log warnings only
            log.warning("%s: %s is back", self.worker, name)

    def batch_started(self) -> None:
        self.busy_since = self.clock()

    def batch_done(self) -> None:
        self.busy_since = None

    def loop_tick(self) -> None:
        self.loop_seen = self.clock()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, checks)``: every check is ``{"ok": bool, "detail": str}``."""
        now = self.clock()
        checks: dict[str, dict[str, Any]] = {}
        stale = self.probed_at is None or now - self.probed_at > self.probe_bound
        for name, failure in self.services.items():
            if failure is None and stale:
                failure = "no recent probe"
            checks[name] = {"ok": failure is None, "detail": failure or "connected"}
        try:
            consuming = bool(self.consuming()) if self.consuming is not None else False
        except Exception as exc:  # noqa: BLE001 - a consumer mid-rebalance may raise
            consuming, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = "partitions assigned" if consuming else "no partitions assigned"
        checks["consuming"] = {"ok": consuming, "detail": why}
        problems = []
        if self.busy_since is not None and now - self.busy_since > self.progress_bound:
            problems.append(f"a batch has been in flight for {now - self.busy_since:.0f}s")
        if self.loop_seen is not None and now - self.loop_seen > self.progress_bound:
            problems.append(f"the consume loop has been silent for {now - self.loop_seen:.0f}s")
        checks["progress"] = {"ok": not problems,
                              "detail": "; ".join(problems) or
                              f"last batch within {self.progress_bound:g}s"}
        return all(c["ok"] for c in checks.values()), checks


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def health_app(state: HealthState) -> Callable:
    """The WSGI app: ``/healthz``, ``/readyz``, else Prometheus metrics."""
    metrics = make_wsgi_app()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            body = json.dumps({"alive": True, "worker": state.worker}).encode()
            status = "200 OK"
        elif path == "/readyz":
            ready, checks = state.readiness()
            body = json.dumps({"ready": ready, "worker": state.worker, "checks": checks}).encode()
            status = "200 OK" if ready else "503 Service Unavailable"
        else:
            return metrics(environ, start_response)
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))])
        return [body]

    return app


def start_health_server(state: HealthState, port: int, host: str = "127.0.0.1"
                        ) -> WSGIServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon thread;
    :class:`ConfigError` (one line) when the address cannot be bound."""
    try:
        server = make_server(host, port, health_app(state), server_class=_Server,
                             handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): "
                          "choose another --metrics-port, or --metrics-host / "
                          "STYLESTREAM_METRICS_HOST") from exc
    thread = threading.Thread(target=server.serve_forever, name="health-server", daemon=True)
    thread.start()
    log.info("metrics and health on http://%s:%d (/metrics, /healthz, /readyz)", host,
             server.server_port)
    return server


async def probe_into(state: HealthState, settings: Settings, topics: Iterable[str]) -> None:
    """Probe Kafka (and ``topics``) and Redis once and record the answer in ``state``."""
    state.record_probe(await probe_services(settings, topics))


async def keep_probing(state: HealthState, settings: Settings, topics: Iterable[str],
                       stop: asyncio.Event, interval: float = PROBE_INTERVAL) -> None:
    """:func:`probe_into` every ``interval`` seconds until ``stop`` is set."""
    topics = list(topics)
    while not stop.is_set():
        try:
            await probe_into(state, settings, topics)
        except Exception:  # noqa: BLE001 - a probe must never stop the worker
            log.exception("health probe failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
