"""``stylestream bench scaling``: ingest events/s with 1, 2, 4 … ``stream`` workers over one topic
of ``--partitions`` partitions, as ratios against one worker in the same run.

For each worker count, on a fresh embedded broker + Redis (or a local 3-master Redis Cluster
with ``--cluster``):

1. start the workers (one consumer group) and wait until each one has applied an event of a
   trickle sent to every partition: the group has formed (``join_s``: from all processes
   serving metrics to that point: group join and rebalances, not process start);
2. send ``--events`` events keyed by shopper (from a thread, while the workers drain) and time
   the group from its first applied event to its last (sum of the workers'
   ``stylestream_events_total``, polled every 50 ms), with the CPU seconds each
   worker, Redis, the broker and this process (the producer) spent meanwhile (``/proc``):
   ``cores`` = CPU / wall tells what bounds the curve on the machine, and ``CPU-bound ev/s`` =
   the machine's cores / CPU per event (all processes) is the rate if the pipeline had them all;
3. with two or more workers, stop one (SIGTERM) and time until the others have applied one new
   event on every partition (``leave_s``: the partitions' takeover after a leave, including the
   ``stop_s`` the leaving worker takes to shut down).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from scripts.bench_args import json_out
from scripts.bench_ingest import metric_total, synthetic_events, worker
from scripts.embedded import EmbeddedServices, start_services, stop_processes


@dataclass(frozen=True)
class Stage:
    """What is scaled: the worker command, the topic it consumes, the counter of its output."""

    command: str
    topic: str
    metric: str


STAGES = {
    "ingest": Stage("stream", "behavior-events", "stylestream_events_total"),
    "rerank": Stage("rerank", "rec-refresh", "stylestream_recommendations_published_total"),
}


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "scaling", help="ingest events/s with 1, 2, 4 stream workers over N partitions",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=sorted(STAGES), default="ingest",
                        help="ingest: stream workers on events; rerank: rerank workers on "
                             "refresh triggers (one per shopper, scores loaded first)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--cluster", action="store_true",
                        help="Redis: a local 3-master cluster instead of one server")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--out", default="var/bench/scaling.json", type=json_out)
    parser.set_defaults(func=run)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _applied(ports: list[int], metric: str) -> list[float]:
    counts = []
    for port in ports:
        try:
            counts.append(metric_total(port, metric))
        except OSError:
            counts.append(-1.0)  # not serving (yet, or any more)
    return counts


def _record(stage: Stage, event: dict) -> tuple[bytes, bytes]:
    """The Kafka record a stage consumes for ``event``: the event, or its refresh trigger."""
    if stage.command == "stream":
        return event["user_id"].encode(), json.dumps(event).encode()
    return event["user_id"].encode(), json.dumps({
        "user_id": event["user_id"], "source_event_time": event["timestamp"],
        "emitted_at": time.time(), "events": 1}).encode()


def _trickle(producer, stage: Stage, partitions: int, tag: str) -> None:  # noqa: ANN001
    now = time.time()
    for p in range(partitions):
        body = {"event_id": f"{tag}-{p}-{uuid.uuid4().hex[:8]}", "user_id": f"probe-{p}",
                "item_id": "probe-item", "behavior": "view", "timestamp": now}
        key, value = _record(stage, body)
        producer.send(stage.topic, key=key, value=value, partition=p)
    producer.flush()


def _load_scores(url: str, events: list[dict]) -> None:
    """The shoppers' state in Redis before the rerank workers start (through the store)."""
    from streams.config import DecaySettings
    from streams.contract import validate_event
    from streams.store import ScoreStore

    async def load() -> None:
        store = ScoreStore.from_url(url, DecaySettings())
        try:
            for k in range(0, len(events), 1000):
                await store.apply_batch([validate_event(e) for e in events[k:k + 1000]])
        finally:
            await store.close()

    asyncio.run(load())


def _services(partitions: int, cluster: bool, workdir: Path) -> EmbeddedServices:
    if cluster:
        from scripts.embedded_cluster import start_services_with_cluster

        return start_services_with_cluster(partitions=partitions, workdir=str(workdir))
    return start_services(partitions=partitions, workdir=str(workdir))


def measure(workers: int, args: argparse.Namespace, events: list[dict], workdir: Path) -> dict:
    from kafka import KafkaProducer

    stage = STAGES[args.stage]
    workdir.mkdir(parents=True, exist_ok=True)
    records = [_record(stage, e) for e in events]
    if stage.command == "rerank":  # one trigger per shopper, newest event: no coalescing
        newest = {e["user_id"]: e for e in events}
        records = [_record(stage, e) for e in newest.values()]
    with _services(args.partitions, args.cluster, workdir / "services") as svc:
        if stage.command == "rerank":
            _load_scores(svc.redis_url, events)
        started = [worker(svc, stage.command, log=workdir / f"{stage.command}-{k}.log")
                   for k in range(workers)]
        procs = [proc for proc, _ in started]
        ports = [port for _, port in started]
        producer = KafkaProducer(bootstrap_servers=svc.kafka_url, linger_ms=20,
                                 batch_size=256 * 1024)
        try:
            deadline = time.monotonic() + args.timeout
            metric = stage.metric
            while min(_applied(ports, metric)) < 0:  # every process serving metrics
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"{stage.command} workers did not start; see {workdir}")
                time.sleep(0.1)
            up = time.monotonic()
            while min(_applied(ports, metric)) < 1:  # every worker owns partitions and applies
                if time.monotonic() > deadline:
                    raise RuntimeError(f"group of {workers} did not form; see {workdir}")
                _trickle(producer, stage, args.partitions, "join")
                time.sleep(0.5)
            join_s = time.monotonic() - up
            time.sleep(1.0)  # let the last trickle drain
            base = sum(_applied(ports, metric))
            cpu_pids = {"workers": [p.pid for p in procs], "redis": [svc.redis_pid],
                        "broker": [svc.kafka_pid]}
            if args.cluster:
                cpu_pids["redis"] = [p.pid for p in svc._procs if p.pid != svc.kafka_pid]
            cpu_before = {k: [cpu_seconds(pid) for pid in pids] for k, pids in cpu_pids.items()}
            load_before = os.getloadavg()
            bench_cpu = time.process_time()  # this process: the producer and the polling
            sent_at = time.monotonic()

            def send_all() -> None:
                for key, value in records:
                    producer.send(stage.topic, key=key, value=value)
                producer.flush()

            # the workers drain while the events are sent: the count is polled from the start
            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            first = last = None
            done = done_at_first = 0.0
            idle_at = sent_at  # the last poll that saw nothing applied yet
            while time.monotonic() < deadline:
                counts = _applied(ports, metric)
                now = time.monotonic()
                total = sum(c for c in counts if c > 0) - base
                if total <= 0:
                    idle_at = now
                if total > 0 and first is None:
                    first, done_at_first = now, total
                if total > done:
                    done, last = total, now
                if done >= len(records):
                    break
                time.sleep(0.05)
            sender.join(timeout=5.0)
            if first is None or last is None or done < len(records):
                raise RuntimeError(f"{workers} workers applied {done:.0f}/{len(records)}; "
                                   f"see {workdir}")
            cpu = {k: sum(cpu_seconds(pid) for pid in pids) - sum(cpu_before[k])
                   for k, pids in cpu_pids.items()}
            cpu["bench"] = time.process_time() - bench_cpu
            per_worker = [cpu_seconds(pid) - c0 for pid, c0 in
                          zip(cpu_pids["workers"], cpu_before["workers"], strict=True)]
            if done == done_at_first:
                # everything landed between two polls (a small run): time it from the last poll
                # that saw nothing, counting every event
                first, done_at_first = idle_at, 0.0
            wall = last - first
            leave_s = stop_s = None
            if workers >= 2:
                before_leave = sum(_applied(ports[:-1], metric))
                left = time.monotonic()
                stop_processes(procs[-1])
                stop_s = time.monotonic() - left
                _trickle(producer, stage, args.partitions, "leave")
                while time.monotonic() < deadline:
                    if sum(_applied(ports[:-1], metric)) - before_leave >= args.partitions:
                        leave_s = time.monotonic() - left
                        break
                    time.sleep(0.05)
        finally:
            producer.close()
            stop_processes(*procs)
    return {"stage": args.stage, "workers": workers, "partitions": args.partitions,
            "records": len(records),
            "seconds": wall, "events_per_s": (done - done_at_first) / max(wall, 1e-9),
            "join_s": join_s, "leave_s": leave_s, "stop_s": stop_s,
            "cpu_s": cpu, "worker_cpu_s": per_worker,
            "worker_cpu_us_per_event": sum(per_worker) / len(records) * 1e6,
            "total_cpu_us_per_event": sum(cpu.values()) / len(records) * 1e6,
            "cores": sum(cpu.values()) / max(last - sent_at, 1e-9), "load_before": load_before,
            "redis": "cluster (3 masters)" if args.cluster else "single"}


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def run(args: argparse.Namespace) -> int:
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit("stylestream bench scaling: --workers needs counts >= 1, e.g. 1,2,4")
    out = Path(args.out)
    work = out.parent / "scaling-work"
    events = synthetic_events(args.events, args.users, args.items, seed=7, prefix="s")
    rows = []
    for n in counts:
        print(f"{args.stage}: {n} worker(s) over {args.partitions} partitions …", flush=True)
        rows.append(measure(n, args, events, work / f"w{n}"))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["events_per_s"]
    cores = os.cpu_count() or 1
    lines = [f"| {args.stage} workers | records/s | × {rows[0]['workers']} worker | join s | "
             "leave s (stop) | "
             "worker CPU µs/record | all CPU µs/record | CPU-bound records/s | cores busy | "
             "load before |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['workers']} | {r['events_per_s']:,.0f} | {r['events_per_s'] / base:.2f} | "
              f"{r['join_s']:.1f} | {_seconds(r['leave_s'])} ({_seconds(r['stop_s'])}) | "
              f"{r['worker_cpu_us_per_event']:.0f} | {r['total_cpu_us_per_event']:.0f} | "
              f"{cores * 1e6 / r['total_cpu_us_per_event']:,.0f} | {r['cores']:.2f} | "
              f"{r['load_before'][0]:.1f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count(), "table": table},
                              indent=2))
    print(f"\nwritten to {out}")
    return 0
