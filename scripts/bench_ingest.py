"""``stylestream bench ingest``: ingest throughput and end-to-end freshness, with baselines.

Measured side by side in one run, each variant on a fresh embedded broker + Redis:

- **throughput** (events/s) of the product's batched Faust agent (``take_events`` + pipelined
  Lua), of a plain Faust agent that handles one event per iteration (same validation, same Lua,
  one round trip per event; :func:`plain_agent_app`, run as ``python -m scripts.bench_ingest``),
  and of raw pipelined Redis (the same Lua batches called from a Python loop, no Kafka): the
  ceiling the agent can approach. A worker's rate is counted from its first applied event to
  its last, read from its Prometheus endpoint, so process start and group join are not in it.
- **freshness** at a fixed offered load (default 1,000 events/s): events stamped with the wall
  clock when sent; freshness = time a Top-5 list is *received* from ``recommendations`` minus its
  ``source_event_time`` (conservative: it includes the consumer hop after publishing), for the
  batched agent and for the plain agent under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from models.progress import progress
from scripts.embedded import EmbeddedServices, free_port, start_services, stop_processes
from streams.config import Settings

if TYPE_CHECKING:
    import faust


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=40000, help="events for the batched agent "
                                                             "and raw Redis")
    p.add_argument("--single-events", type=int, default=8000,
                   help="events for the one-at-a-time agent (slower; its rate is per event)")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--load", type=float, default=1000.0, help="offered events/s for freshness")
    p.add_argument("--load-seconds", type=float, default=20.0)
    p.add_argument("--only", choices=("throughput", "freshness"), default=None,
                   help="run one half of the benchmark")
    p.add_argument("--out", default="var/bench/ingest.json")


def synthetic_events(n: int, users: int, items: int, seed: int, prefix: str) -> list[dict]:
    rng = random.Random(seed)
    behaviors = ["view"] * 14 + ["favorite", "cart", "cart", "purchase"]
    now = time.time()
    return [{"event_id": f"{prefix}{k}", "user_id": f"u{rng.randrange(users)}",
             "item_id": f"i{int(rng.paretovariate(1.2)) % items}",
             "behavior": rng.choice(behaviors), "timestamp": now - rng.uniform(0, 86400)}
            for k in range(n)]


def produce_all(svc: EmbeddedServices, topic: str, events: list[dict]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=svc.kafka_url, linger_ms=20,
                             batch_size=256 * 1024)
    for e in events:
        producer.send(topic, key=e["user_id"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()


def metric_total(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def plain_agent_app(settings: Settings) -> faust.App:
    """The baseline: the product's ingest parts (same validation, same Lua, same retries)
    driven by a plain Faust agent that takes one event per iteration and sends each refresh
    trigger through Faust's buffered send."""
    from streams.app import Triggers, build_ingest, refresh_message

    parts = build_ingest(settings)

    async def send_one_by_one(triggers: Triggers) -> None:
        for user, (newest, events) in triggers.items():
            await parts.refresh_topic.send(key=user.encode(),
                                           value=refresh_message(user, newest, events))

    @parts.app.agent(parts.events_topic, name="ingest")
    async def ingest_single(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await parts.process([event], send_one_by_one)

    return parts.app


def plain_agent_main(argv: list[str]) -> int:
    """``python -m scripts.bench_ingest --metrics-port N``: run the plain agent as a worker."""
    from prometheus_client import start_http_server

    from streams.app import run_worker
    from streams.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m scripts.bench_ingest",
                                     description="the ingest benchmark's plain-agent worker")
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    start_http_server(args.metrics_port, addr="127.0.0.1")
    run_worker(plain_agent_app(settings))
    return 0


def worker(svc: EmbeddedServices, *args: str, log: Path) -> tuple[subprocess.Popen, int]:
    """A worker process: ``stylestream ARGS`` or, for ``("plain",)``, the plain agent."""
    port = free_port()
    env = dict(os.environ, **svc.env())
    command = ["scripts.bench_ingest"] if args == ("plain",) else ["scripts.cli", *args]
    proc = subprocess.Popen([sys.executable, "-m", *command, "--metrics-port", str(port)],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, port


def agent_throughput(events: list[dict], single: bool, workdir: Path) -> dict:
    """Pre-load the topic, start the agent, time first → last applied event."""
    with start_services(partitions=4, workdir=str(workdir)) as svc:
        produce_all(svc, "behavior-events", events)
        args = ["plain"] if single else ["stream"]
        proc, port = worker(svc, *args, log=workdir / "worker.log")
        label = "plain agent" if single else "batched agent"
        first = last = None
        done = done_at_first = 0.0
        with progress(total=len(events), desc=f"ingest: {label}", unit="ev") as bar:
            deadline = time.time() + 600
            while time.time() < deadline and proc.poll() is None:
                try:
                    now_done = metric_total(port, "stylestream_events_total")
                except OSError:
                    time.sleep(0.2)
                    continue
                now = time.perf_counter()
                if now_done > 0 and first is None:
                    first, done_at_first = now, now_done
                if now_done > done:
                    bar.update(int(now_done - done))
                    done, last = now_done, now
                if done >= len(events):
                    break
                time.sleep(0.05)
        stop_processes(proc)
    if first is None or last is None or done < len(events):
        raise RuntimeError(f"{label} applied {done:.0f}/{len(events)} events; see "
                           f"{workdir / 'worker.log'}")
    # events applied before the first poll saw any are not timed: count only those after it
    return {"variant": label, "events": len(events), "seconds": last - first,
            "events_per_s": (done - done_at_first) / max(last - first, 1e-9)}


def raw_redis_throughput(events: list[dict], workdir: Path, batch: int = 1000) -> dict:
    """The same Lua batches from a plain Python loop: the Redis-side ceiling."""
    from streams.config import DecaySettings
    from streams.contract import validate_event
    from streams.store import ScoreStore

    parsed = [validate_event(e) for e in events]

    async def run(url: str) -> float:
        store = ScoreStore.from_url(url, DecaySettings())
        started = time.perf_counter()
        for k in progress(range(0, len(parsed), batch), desc="ingest: raw Redis", unit="batch"):
            await store.apply_batch(parsed[k:k + batch])
        elapsed = time.perf_counter() - started
        await store.close()
        return elapsed

    with start_services(partitions=4, workdir=str(workdir)) as svc:
        seconds = asyncio.run(run(svc.redis_url))
    return {"variant": "raw pipelined Redis (no Kafka)", "events": len(events),
            "seconds": seconds, "events_per_s": len(events) / seconds}


def freshness_under_load(rate: float, seconds: float, single: bool, users: int, items: int,
                         workdir: Path) -> dict:
    """Both workers up; offer ``rate`` events/s; freshness of the lists that come back."""
    from kafka import KafkaConsumer, KafkaProducer

    label = "plain agent" if single else "batched agent"
    with start_services(partitions=4, workdir=str(workdir)) as svc:
        stream_args = ["plain"] if single else ["stream"]
        ingest, _ = worker(svc, *stream_args, log=workdir / "stream.log")
        rerank, _ = worker(svc, "rerank", log=workdir / "rerank.log")
        lags: list[float] = []
        stop_reading, warmed = threading.Event(), threading.Event()

        def read() -> None:
            consumer = KafkaConsumer("recommendations", bootstrap_servers=svc.kafka_url,
                                     enable_auto_commit=False,
                                     auto_offset_reset="latest", fetch_max_wait_ms=10,
                                     consumer_timeout_ms=200)
            while not stop_reading.is_set():
                for record in consumer:
                    msg = json.loads(record.value)
                    if msg["user_id"] != "warm-up":
                        lags.append(time.time() - msg["source_event_time"])
                    else:
                        warmed.set()
            consumer.close()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        producer = KafkaProducer(bootstrap_servers=svc.kafka_url, linger_ms=2)
        # the clock starts once both workers joined their groups and served a warm-up list
        deadline = time.time() + 120
        while not warmed.is_set() and time.time() < deadline:
            warm = {"event_id": f"warm-up-{time.time()}", "user_id": "warm-up",
                    "item_id": "i0", "behavior": "view", "timestamp": time.time()}
            producer.send("behavior-events", key=b"warm-up", value=json.dumps(warm).encode())
            producer.flush()
            warmed.wait(2.0)
        if not warmed.is_set():
            producer.close()
            stop_reading.set()
            stop_processes(ingest, rerank)
            raise RuntimeError(f"the {label} served no warm-up list within 120 s; see {workdir}")
        events = synthetic_events(int(rate * seconds), users, items, seed=3, prefix="f")
        started = time.time()
        for k, e in enumerate(progress(events, desc=f"freshness: {label}", unit="ev")):
            delay = started + k / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            e["timestamp"] = time.time()
            producer.send("behavior-events", key=e["user_id"].encode(),
                          value=json.dumps(e).encode())
        producer.flush()
        offered = len(events) / (time.time() - started)
        producer.close()  # clients close before the broker they talk to stops
        time.sleep(3.0)
        stop_reading.set()
        reader.join(timeout=5)
        stop_processes(ingest, rerank)
    if not lags:
        raise RuntimeError(f"no lists came back for the {label}; see {workdir}")
    q = statistics.quantiles(lags, n=100)
    return {"variant": label, "offered_events_per_s": offered, "lists": len(lags),
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": max(lags) * 1000}


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    work = out.parent / "ingest-work"
    work.mkdir(parents=True, exist_ok=True)
    events = synthetic_events(args.events, args.users, args.items, seed=1, prefix="b")
    single_events = events[: args.single_events]
    throughput = [] if args.only == "freshness" else [
        agent_throughput(events, single=False, workdir=work / "batched"),
        agent_throughput(single_events, single=True, workdir=work / "single"),
        raw_redis_throughput(events, work / "raw"),
    ]
    freshness = [] if args.only == "throughput" else [
        freshness_under_load(args.load, args.load_seconds, False, args.users, args.items,
                             work / "fresh-batched"),
        freshness_under_load(args.load, args.load_seconds, True, args.users, args.items,
                             work / "fresh-single"),
    ]
    lines = []
    if throughput:
        base = throughput[1]["events_per_s"]
        lines += ["| variant | events | events/s | × plain agent |", "|---|---:|---:|---:|"]
        lines += [f"| {r['variant']} | {r['events']} | {r['events_per_s']:,.0f} | "
                  f"{r['events_per_s'] / base:.1f} |" for r in throughput]
    if freshness:
        lines += ["", "| variant | offered ev/s | lists | freshness p50 ms | p99 ms | max ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['variant']} | {r['offered_events_per_s']:,.0f} | {r['lists']} | "
                  f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} |"
                  for r in freshness]
    table = "\n".join(lines)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"throughput": throughput, "freshness": freshness,
                               "cpu_count": os.cpu_count(), "table": table}, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(plain_agent_main(sys.argv[1:]))
