"""A local Redis Cluster on loopback: ``masters`` redis-server processes in cluster mode.

Same binary as the embedded single Redis (:func:`scripts.embedded.redis_binary`), no
``redis-cli`` needed: the 16,384 slots are split evenly with ``CLUSTER ADDSLOTS`` and the nodes
introduced with ``CLUSTER MEET`` over redis-py, then we wait until every node reports
``cluster_state:ok`` and agrees on the slot map. Each node's cluster bus listens on
``port + 10000``, so ports are drawn below 55,536.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from scripts.embedded import (
    EmbeddedServices,
    ServiceError,
    redis_binary,
    start_services,
    stop_processes,
    wait_for_port,
)

SLOTS = 16384
BUS_OFFSET = 10000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster-bus port (``+10000``) is free too."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(20000, 65536 - BUS_OFFSET)
        if port in taken or port + BUS_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            return port
    raise ServiceError("no free port pair (port, port+10000) for a cluster node")


@dataclass
class EmbeddedCluster:
    """Running cluster nodes; ``url`` names the first (any node will do for a client)."""

    ports: list[int]
    workdir: str
    _procs: tuple[subprocess.Popen, ...] = ()
    _argv: tuple[list[str], ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def procs(self) -> tuple[subprocess.Popen, ...]:
        return self._procs

    def stop(self) -> None:
        stop_processes(*self._procs, timeout=5.0)
        self._procs = ()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash: no shutdown, its data gone with it)."""
        self._procs[index].kill()
        self._procs[index].wait(timeout=5.0)

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start node ``index`` again from its ``nodes.conf``: it rejoins with its slots."""
        argv = self._argv[index]
        node_dir = Path(argv[argv.index("--dir") + 1])
        log = open(node_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=node_dir)
        procs = list(self._procs)
        procs[index] = proc
        self._procs = tuple(procs)
        wait_for_port("127.0.0.1", self.ports[index], timeout, proc, "redis-server (cluster)")
        _wait_until_formed(self.ports, timeout)

    def __enter__(self) -> EmbeddedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _slot_ranges(masters: int) -> list[range]:
    bounds = [SLOTS * k // masters for k in range(masters + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(masters)]


def _wait_until_formed(ports: list[int], timeout: float) -> None:
    """Every node sees every other node, all slots assigned, state ok."""
    clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=2) for p in ports]
    deadline = time.monotonic() + timeout
    try:
        while True:
            ok = True
            for client in clients:
                info = client.cluster("info")
                if isinstance(info, bytes):
                    info = info.decode()
                if isinstance(info, str):
                    info = dict(line.split(":", 1) for line in info.split() if ":" in line)
                if (str(info.get("cluster_state")) != "ok"
                        or int(info.get("cluster_known_nodes", 0)) != len(ports)
                        or int(info.get("cluster_slots_ok", 0)) != SLOTS):
                    ok = False
                    break
            if ok:
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"Redis Cluster on ports {ports} did not form within "
                                   f"{timeout}s (last: {info})")
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()


def start_cluster(masters: int = 3, workdir: str | None = None,
                  timeout: float = 30.0) -> EmbeddedCluster:
    """Start ``masters`` cluster-mode Redis nodes on loopback and join them into one cluster."""
    if masters < 1:
        raise ValueError("a cluster needs at least one master")
    workdir = str(Path(workdir or tempfile.mkdtemp(prefix="stylestream-cluster-")).resolve())
    taken: set[int] = set()
    ports = []
    for _ in range(masters):
        port = cluster_port(taken)
        taken |= {port, port + BUS_OFFSET}
        ports.append(port)
    procs: list[subprocess.Popen] = []
    argvs: list[list[str]] = []
    try:
        for port in ports:
            node_dir = Path(workdir) / f"node-{port}"
            node_dir.mkdir(parents=True, exist_ok=True)
            log = open(node_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
            argvs.append([str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1",
                          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                          "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                          "--dir", str(node_dir), "--protected-mode", "yes"])
            procs.append(subprocess.Popen(argvs[-1], stdout=log, stderr=subprocess.STDOUT,
                                          cwd=node_dir))
        for port, proc in zip(ports, procs, strict=True):
            wait_for_port("127.0.0.1", port, timeout, proc, f"redis-server (cluster) :{port}")
        for port, slots in zip(ports, _slot_ranges(masters), strict=True):
            with contextlib.closing(redis.Redis(host="127.0.0.1", port=port)) as client:
                client.execute_command("CLUSTER ADDSLOTS", *slots)
        with contextlib.closing(redis.Redis(host="127.0.0.1", port=ports[0])) as first:
            for port in ports[1:]:
                first.execute_command("CLUSTER MEET", "127.0.0.1", port)
        _wait_until_formed(ports, timeout)
    except BaseException:
        stop_processes(*procs, timeout=5.0)
        raise
    return EmbeddedCluster(ports=ports, workdir=workdir, _procs=tuple(procs),
                           _argv=tuple(argvs))


def start_services_with_cluster(partitions: int = 4, masters: int = 3,
                                workdir: str | None = None) -> EmbeddedServices:
    """:func:`scripts.embedded.start_services`, with ``redis_url`` naming a fresh local Redis
    Cluster instead of the single Redis (which is stopped); :meth:`stop` stops all of it."""
    services = start_services(partitions=partitions, workdir=workdir)
    single = [p for p in services._procs if p.pid == services.redis_pid]
    stop_processes(*single, timeout=5.0)
    try:
        cluster = start_cluster(masters, workdir=str(Path(services.workdir) / "cluster"))
    except BaseException:
        services.stop()
        raise
    return replace(services, redis_url=cluster.url, redis_pid=cluster.procs[0].pid,
                   _procs=(*[p for p in services._procs if p.pid != services.redis_pid],
                           *cluster.procs))


if __name__ == "__main__":  # pragma: no cover - manual check
    with start_cluster() as c:
        print(c.url, c.ports)
