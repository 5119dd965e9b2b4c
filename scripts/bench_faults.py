"""``stylestream bench faults``: the fault suite, under a steady offered load.

One durable embedded stack (Tansu on S3 over SeaweedFS, Redis with an AOF), one ingest worker,
one rerank worker, a producer offering events at a fixed rate (event times spread over
``--days``, a few malformed records mixed in), and these faults, one phase each:

1. SIGKILL the ingest worker (``--repeats`` times), restarting it at once;
2. SIGKILL the rerank worker (``--repeats`` times);
3. freeze Redis (SIGSTOP) for ``--freeze-seconds``, then SIGCONT;
4. restart Redis (SIGKILL, start again on its AOF);
5. two ingest workers in one group; one is SIGKILLed mid-batch and the other takes its
   partitions;
6. restart the broker (SIGKILL Tansu, start again on its S3 data).

After each phase, once production of the phase is over, the suite waits (with a deadline) until
all of these hold, and records how long that took:

- every shopper's scores equal Eq. 1–3 over the whole produced log (``streams.decay``'s
  reference, all shoppers read in bulk, relative error ≤ 1e-9);
- every shopper with a valid event has a ``rec:{user}`` list generated after its last event was
  produced;
- the dead-letter topic holds exactly the malformed records injected (by content; re-sends of
  the same record after a crash are counted and reported apart).

Time to recover = first Top-5 list generated after the fault ended (kill, SIGCONT, or restart),
read from the ``recommendations`` topic. Global counters (popularity) are reported, not checked
exactly: a worker killed between its two Lua calls under-counts them (``streams/store.py``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scripts.bench_args import json_out
from scripts.bench_ingest import metric_total
from scripts.embedded import EmbeddedServices, free_port, start_services, stop_processes
from scripts.fault_checks import (
    expected_scores,
    parse_log,
    popularity_error,
    read_topic,
    score_mismatches,
    stale_lists,
    stored_scores,
)
from streams.config import load_settings

#: in this order; the broker restart last: a rebalance after it has been seen to leave the
#: Faust ingest worker holding partitions it never processes (RELIABILITY.md, findings)
PHASES = ("ingest-kill", "rerank-kill", "redis-freeze", "redis-restart", "ingest-handover",
          "broker-restart")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events-per-phase", type=int, default=5000)
    p.add_argument("--rate", type=float, default=1000.0, help="offered events/s")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--days", type=float, default=3.0,
                   help="event times spread over this many days before now")
    p.add_argument("--repeats", type=int, default=3, help="kills per worker-kill phase")
    p.add_argument("--freeze-seconds", type=float, default=10.0)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--settle-timeout", type=float, default=180.0,
                   help="deadline for the checks after each phase")
    p.add_argument("--join-timeout", type=float, default=120.0,
                   help="ingest-handover: how long the second worker may take to apply events")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--out", default="var/bench/faults.json", type=json_out)


@dataclass
class PhaseResult:
    phase: str
    faults: int = 0
    produced: int = 0
    recover_s: list[float] = field(default_factory=list)
    settle_s: float | None = None
    shoppers: int = 0
    wrong_scores: int = 0
    worst_rel_error: float = 0.0
    stale_lists: int = 0
    dlq_expected: int = 0
    dlq_found: int = 0
    dlq_resent: int = 0
    dlq_exact: bool = False
    #: producer side, whole run so far: records acknowledged, sends given up (never
    #: acknowledged, so not owed), acknowledged records missing from the log (must be 0)
    acked: int = 0
    send_failed: int = 0
    lost_acked: int = 0
    ok: bool = False
    #: each check while settling: (seconds, wrong scores, stale lists, DLQ records found)
    progress: list[tuple[float, int, int, int]] = field(default_factory=list)
    #: global counters, reported apart (not part of ``ok``): items off, worst relative error
    popularity_items_off: int = 0
    popularity_worst_rel_error: float = 0.0


class Workers:
    """The worker subprocesses (``stylestream stream`` / ``rerank``), restartable by name."""

    def __init__(self, svc: EmbeddedServices, logdir: Path, partitions: int) -> None:
        self.env = dict(os.environ, **svc.env(), STYLESTREAM_PARTITIONS=str(partitions))
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: str) -> int:
        """Start ``stylestream <command>`` as ``name``; returns its metrics port."""
        log = (self.logdir / f"{name}.log").open("ab")
        port = free_port()
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", command, "--metrics-port", str(port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return port

    def applying(self, port: int) -> bool:
        """Whether the ingest worker serving metrics on ``port`` has applied any event."""
        try:
            return metric_total(port, "stylestream_events_total") > 0
        except OSError:
            return False

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        stop_processes(*self.procs.values())
        self.procs.clear()


class ListReader(threading.Thread):
    """Follows ``recommendations``; keeps each list's ``generated_at``."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.generated: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer("recommendations", bootstrap_servers=self.bootstrap,
                                 auto_offset_reset="latest", consumer_timeout_ms=200,
                                 fetch_max_wait_ms=50)
        while not self.halt.is_set():
            try:
                for record in consumer:
                    self.generated.append(float(json.loads(record.value)["generated_at"]))
            except Exception:  # broker restarting: keep following
                time.sleep(0.2)
        consumer.close()

    def first_after(self, t: float, deadline: float) -> float | None:
        """Seconds from ``t`` to the first list generated after it (waits until ``deadline``)."""
        while time.time() < deadline:
            later = [g for g in list(self.generated) if g > t]
            if later:
                return min(later) - t
            time.sleep(0.05)
        return None


class Load:
    """Offers events at a fixed rate on a thread; malformed records at chosen positions."""

    def __init__(self, bootstrap: str, users: int, items: int, days: float, seed: int) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, retries=50,
                                      retry_backoff_ms=200, request_timeout_ms=15000,
                                      max_in_flight_requests_per_connection=1, acks=1)
        self.rng = random.Random(seed)
        self.users, self.items, self.days = users, items, days
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.bad: list[bytes] = []

    def _acked(self, _: object) -> None:
        self.acked += 1

    def _failed(self, _: object) -> None:
        self.failed += 1

    def event(self) -> tuple[bytes, bytes]:
        rng = self.rng
        user = f"u{rng.randrange(self.users)}"
        behavior = rng.choice(["view"] * 10 + ["favorite", "cart", "cart", "purchase"])
        value = json.dumps({"event_id": f"e{self.sent}", "user_id": user,
                            "item_id": f"i{int(rng.paretovariate(1.2)) % self.items}",
                            "behavior": behavior,
                            "timestamp": time.time() - rng.uniform(0, self.days * 86400)})
        return user.encode(), value.encode()

    def malformed(self) -> tuple[bytes, bytes]:
        n = len(self.bad)
        value = [b"{not json %d" % n,
                 json.dumps({"event_id": f"bad{n}", "user_id": "u0", "item_id": "i0",
                             "behavior": "teleport", "timestamp": time.time()}).encode(),
                 json.dumps({"event_id": f"bad{n}", "user_id": "u0", "item_id": "i0",
                             "behavior": "view"}).encode()][n % 3]
        self.bad.append(value)
        return b"bad", value

    def offer(self, n: int, rate: float, bad_every: int,
              at: dict[int, Callable[[], None]]) -> threading.Thread:
        """Send ``n`` records at ``rate``/s on a thread; ``at[k]`` runs (on its own thread)
        when the k-th record of this call has been sent."""
        def run() -> None:
            started = time.time()
            for k in range(n):
                delay = started + k / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                key, value = self.malformed() if bad_every and k % bad_every == bad_every // 2 \
                    else self.event()
                future = self.producer.send("behavior-events", key=key, value=value)
                future.add_callback(self._acked)
                future.add_errback(self._failed)
                self.sent += 1
                if k in at:
                    threading.Thread(target=at[k], daemon=True).start()
            self.producer.flush(timeout=120)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def dlq_check(bootstrap: str, injected: list[bytes], timeout: float) -> tuple[int, int, bool]:
    """(distinct originals found, re-sends, found == injected) in the dead-letter topic."""
    records = read_topic(bootstrap, "behavior-events-dlq", at_least=len(injected),
                         timeout=timeout, idle_ms=1000)
    originals = [base64.b64decode(json.loads(r.value)["original_b64"]) for r in records]
    distinct = set(originals)
    return len(distinct), len(originals) - len(distinct), distinct == set(injected)


def check(svc: EmbeddedServices, load: Load, result: PhaseResult, settle_timeout: float) -> None:
    """Wait until scores are exact, lists fresh and the DLQ exact (or the deadline); record."""
    decay = load_settings().decay
    started = time.monotonic()
    deadline = started + settle_timeout
    while True:
        records = read_topic(svc.kafka_url, "behavior-events", at_least=load.acked,
                             timeout=60, idle_ms=1000)
        log = parse_log(records)
        result.acked, result.send_failed = load.acked, load.failed
        result.lost_acked = max(0, load.acked - len({r.value for r in records}))
        at = time.time() + 3600
        reference = expected_scores(log.events, decay)
        users = sorted(reference.users)
        wrong, worst = score_mismatches(reference, stored_scores(svc.redis_url, users, at, decay),
                                        at)
        stale = stale_lists(svc.redis_url, log.produced_at)
        found, resent, exact = dlq_check(svc.kafka_url, load.bad, timeout=30)
        result.shoppers, result.wrong_scores, result.worst_rel_error = len(users), len(wrong), \
            worst
        result.stale_lists, result.dlq_expected, result.dlq_found = len(stale), len(load.bad), \
            found
        result.dlq_resent, result.dlq_exact = resent, exact
        result.ok = not wrong and not stale and exact and not result.lost_acked
        result.progress.append((round(time.monotonic() - started, 1), len(wrong), len(stale),
                                found))
        if result.ok or time.monotonic() > deadline:
            result.popularity_items_off, result.popularity_worst_rel_error = popularity_error(
                svc.redis_url, log.events, at, decay)
            result.settle_s = time.monotonic() - started if result.ok else None
            return
        time.sleep(1.0)


def run_phase(phase: str, svc: EmbeddedServices, workers: Workers, load: Load,
              reader: ListReader, args: argparse.Namespace) -> PhaseResult:
    result = PhaseResult(phase)
    n = args.events_per_phase
    sent_before = load.sent
    ends: list[float] = []

    def note_end(fault: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            fault()
            result.faults += 1
            ends.append(time.time())
        return run

    def kill_restart(name: str, command: str) -> Callable[[], None]:
        def fault() -> None:
            workers.kill(name)
            workers.start(name, command)
        return fault

    def freeze() -> None:
        pid = svc.process("redis").pid
        os.kill(pid, signal.SIGSTOP)
        time.sleep(args.freeze_seconds)
        os.kill(pid, signal.SIGCONT)

    def handover() -> None:
        # the second worker joined at the start of the phase; kill the first mid-batch
        workers.kill("ingest")

    faults: dict[str, tuple[int, Callable[[], None]]] = {
        "ingest-kill": (args.repeats, kill_restart("ingest", "stream")),
        "rerank-kill": (args.repeats, kill_restart("rerank", "rerank")),
        "redis-freeze": (1, freeze),
        "redis-restart": (1, lambda: svc.restart("redis")),
        "broker-restart": (1, lambda: svc.restart("kafka")),
        "ingest-handover": (1, handover),
    }
    count, fault = faults[phase]
    if phase == "ingest-handover":
        # the second worker must hold partitions of its own (it applies events) before the
        # first dies: offer a trickle until it does
        port = workers.start("ingest-2", "stream")
        joined_by = time.monotonic() + args.join_timeout
        while not workers.applying(port) and time.monotonic() < joined_by:
            load.offer(20, args.rate, 0, {}).join()
        result.produced += load.sent - sent_before
    at = {int(n * (j + 1) / (count + 1)): note_end(fault) for j in range(count)}
    bad_every = max(n // 2, 1)
    producing = load.offer(n, args.rate, bad_every, at)
    producing.join()
    result.produced += n
    wait_until = time.time() + 120
    while len(ends) < count and time.time() < wait_until:  # a fault may still be running
        time.sleep(0.1)
    for end in ends:
        recovered = reader.first_after(end, time.time() + 120)
        result.recover_s.append(round(recovered, 2) if recovered is not None else -1.0)
    check(svc, load, result, args.settle_timeout)
    if phase == "ingest-handover":  # back to one worker named "ingest" for later phases
        workers.procs["ingest"] = workers.procs.pop("ingest-2")
    return result


def run_suite(args: argparse.Namespace, workdir: Path) -> list[PhaseResult]:
    workdir.mkdir(parents=True, exist_ok=True)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise SystemExit(f"stylestream bench faults: unknown phase(s) {unknown}")
    results: list[PhaseResult] = []
    shutil.rmtree(workdir / "home", ignore_errors=True)  # the log must be this run's alone
    with start_services(partitions=args.partitions, durable_home=str(workdir / "home")) as svc:
        workers = Workers(svc, workdir, args.partitions)
        reader = ListReader(svc.kafka_url)
        reader.start()
        load = Load(svc.kafka_url, args.users, args.items, args.days, seed=11)
        try:
            workers.start("ingest", "stream")
            workers.start("rerank", "rerank")
            for phase in phases:
                result = run_phase(phase, svc, workers, load, reader, args)
                print(json.dumps(asdict(result)), flush=True)
                results.append(result)
        finally:
            reader.halt.set()
            workers.stop()
            load.producer.close(timeout=5)
            reader.join(timeout=5)
    return results


def table(results: list[PhaseResult]) -> str:
    lines = ["| phase | faults | events | recover s (first list after each fault) | settled s |"
             " shoppers | wrong scores | worst rel. err | stale lists | DLQ found/injected "
             "(re-sent) | acked lost | ok | popularity: items off (worst rel. err) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---|---|"]
    for r in results:
        settle = f"{r.settle_s:.1f}" if r.settle_s is not None else "—"
        lines.append(f"| {r.phase} | {r.faults} | {r.produced} | "
                     f"{', '.join(f'{x:.2f}' for x in r.recover_s)} | {settle} | {r.shoppers} |"
                     f" {r.wrong_scores} | {r.worst_rel_error:.1e} | {r.stale_lists} | "
                     f"{r.dlq_found}/{r.dlq_expected} ({r.dlq_resent}) | {r.lost_acked} | "
                     f"{'yes' if r.ok else 'NO'} | {r.popularity_items_off} "
                     f"({r.popularity_worst_rel_error:.1e}) |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.monotonic()
    results = run_suite(args, out.parent / "faults-work")
    text = table(results)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": [asdict(r) for r in results], "table": text,
                               "args": vars(args) | {"func": None},
                               "seconds": time.monotonic() - started,
                               "cpu_count": os.cpu_count()}, indent=2, default=str))
    print(f"\nwritten to {out}")
    return 0 if all(r.ok for r in results) else 1
