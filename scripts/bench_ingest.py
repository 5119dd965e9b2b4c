"""``stylestream bench ingest``: ingest throughput against its ceiling, and end-to-end freshness.

Measured side by side in one run, each variant on a fresh embedded broker + Redis:

- **throughput** (events/s), the same pre-loaded topic for each: the **ceiling**, a Faust agent
  on the product's app (same settings, topics, tasks) that only takes the product's batches and
  counts them (:func:`ceiling_agent_app`); the **product**'s pipelined batched agent; the
  baseline, a **plain** Faust agent that handles one event per iteration (same validation,
  same Lua, one round trip per event; :func:`plain_agent_app`); and **raw pipelined Redis**
  (the same Lua batches called from a Python loop, no Kafka). The two benchmark agents run as
  ``python -m scripts.bench_ingest --variant ceiling|plain``. A worker's rate is counted from
  its first applied (taken) event to its last, read from its Prometheus endpoint, so process
  start and group join are not in it. The result to read is product ÷ ceiling.
- **freshness** at a fixed offered load (default 1,000 events/s): events stamped with the wall
  clock when sent; freshness = time a Top-5 list is *received* from ``recommendations`` minus its
  ``source_event_time`` (conservative: it includes the consumer hop after publishing), for the
  batched agent and for the plain agent under the same load.
- **where the freshness goes**, beside each freshness point: p50/p99 of each stage of the rerank
  worker's ``stylestream_freshness_stage_seconds`` (event → trigger sent, → taken by rerank,
  → list built, → acknowledged; read from its ``/metrics`` before and after the load) and,
  exactly, list built → received by the reader (:func:`stages_table`).
- **curve** (``--only curve``): the product's freshness at each offered load of ``--loads`` in
  turn, both workers, broker, Redis and the load generator on this machine, until the first
  load at which it falls behind (:func:`saturated`); the load average before and after each
  point, and a PNG plot beside the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from scripts.bench_args import json_out
from scripts.embedded import EmbeddedServices, free_port, start_services, stop_processes
from streams.config import Settings, fetch_wait_ms_from_env

if TYPE_CHECKING:
    import faust


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=40000,
                   help="events for the ceiling, the batched agent and raw Redis")
    p.add_argument("--single-events", type=int, default=8000,
                   help="events for the one-at-a-time agent (slower; its rate is per event)")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--load", type=float, default=1000.0, help="offered events/s for freshness")
    p.add_argument("--load-seconds", type=float, default=20.0)
    p.add_argument("--only", choices=("throughput", "freshness", "curve"), default=None,
                   help="run one part: throughput (ceiling, product, plain agent, raw Redis), "
                        "freshness at --load, or curve (freshness of the product at each of "
                        "--loads until it falls behind; a PNG plot beside --out)")
    p.add_argument("--loads", default="500,1000,2000,3000,5000,7000,10000",
                   help="offered events/s of the curve, in order (default %(default)s)")
    p.add_argument("--out", default="var/bench/ingest.json", type=json_out)


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


#: The rerank worker's per-stage freshness histogram (serving/metrics.py ``STAGE_LAG``).
STAGE_METRIC = "stylestream_freshness_stage_seconds"


def stage_buckets(port: int) -> dict[str, list[tuple[float, float]]]:
    """The rerank worker's cumulative ``(upper bound, count)`` buckets of each freshness stage,
    read from its Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if not line.startswith(STAGE_METRIC + "_bucket{"):
            continue
        labels, value = line[len(STAGE_METRIC) + 8:].rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split(","))
        buckets.setdefault(fields["stage"].strip('"'), []).append(
            (float(fields["le"].strip('"')), float(value)))
    return {stage: sorted(rows) for stage, rows in buckets.items()}


def histogram_quantile(before: list[tuple[float, float]], after: list[tuple[float, float]],
                       q: float) -> float | None:
    """The ``q`` quantile of what a cumulative histogram counted between two reads, linearly
    interpolated inside its bucket (as Prometheus's ``histogram_quantile``); None if empty."""
    was = dict(before)
    counts = [(le, n - was.get(le, 0.0)) for le, n in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le, n in counts:
        if n >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(n - below, 1e-12)
        lower, below = le, n
    return lower


def stage_quantiles(before: dict[str, list[tuple[float, float]]],
                    after: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    """p50/p99 ms of each rerank-worker stage between two reads (pipeline order)."""
    result = {}
    for stage in STAGE_LABELS:
        if stage not in after:
            continue
        p50, p99 = (histogram_quantile(before.get(stage, []), after[stage], q)
                    for q in (0.5, 0.99))
        if p50 is not None and p99 is not None:
            result[stage] = {"p50_ms": p50 * 1000, "p99_ms": p99 * 1000}
    return result


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


def ceiling_agent_app(settings: Settings) -> faust.App:
    """The ceiling: the product's Faust app (same settings, topics, tasks and timers) with an
    agent that takes the product's batches (:func:`streams.app.take_batches`) and only counts
    them: no parsing, validation, Redis or triggers. What the product's agent does beyond it
    is the cost of its own work."""
    from streams import metrics
    from streams.app import build_ingest, take_batches

    parts = build_ingest(settings)
    taken = metrics.EVENTS.labels("taken")

    @parts.app.agent(parts.events_topic, name="ingest")
    async def ingest_ceiling(stream: faust.StreamT) -> None:
        async for batch in take_batches(stream, settings):
            taken.inc(len(batch))

    return parts.app


#: The benchmark's own agents, run as ``python -m scripts.bench_ingest --variant NAME``.
BENCH_AGENTS = {"plain": plain_agent_app, "ceiling": ceiling_agent_app}


def bench_agent_main(argv: list[str]) -> int:
    """``python -m scripts.bench_ingest --variant plain|ceiling --metrics-port N``: run one of
    the benchmark's agents as a worker."""
    from prometheus_client import start_http_server

    from streams.app import run_worker
    from streams.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m scripts.bench_ingest",
                                     description="the ingest benchmark's own agents")
    parser.add_argument("--variant", choices=sorted(BENCH_AGENTS), required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    start_http_server(args.metrics_port, addr="127.0.0.1")
    run_worker(BENCH_AGENTS[args.variant](settings))
    return 0


def worker(svc: EmbeddedServices, *args: str, log: Path) -> tuple[subprocess.Popen, int]:
    """A worker process: ``stylestream ARGS`` or, for ``("plain",)`` / ``("ceiling",)``, one
    of the benchmark's agents."""
    port = free_port()
    env = dict(os.environ, **svc.env())
    command = (["scripts.bench_ingest", "--variant", args[0]] if args[0] in BENCH_AGENTS
               else ["scripts.cli", *args])
    proc = subprocess.Popen([sys.executable, "-m", *command, "--metrics-port", str(port)],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, port


#: What each worker variant of the throughput benchmark is called in its tables.
LABELS = {"ceiling": "ceiling: Faust agent that only takes the batches",
          "stream": "batched agent (the product)",
          "plain": "plain agent, one event per iteration"}


def agent_throughput(events: list[dict], variant: str, workdir: Path) -> dict:
    """Pre-load the topic, start the worker ``variant`` (``stream``: the product, ``ceiling``,
    ``plain``), time first → last applied (or, for the ceiling, taken) event."""
    label = LABELS[variant]
    with start_services(partitions=4, workdir=str(workdir)) as svc:
        produce_all(svc, "behavior-events", events)
        proc, port = worker(svc, variant, log=workdir / "worker.log")
        first = last = None
        done = done_at_first = 0.0
        cpu_first = cpu_last = 0.0
        redis_first = redis_last = 0.0
        load_before = os.getloadavg()[0]
        with progress(total=len(events), desc=f"ingest: {variant}", unit="ev") as bar:
            deadline = time.time() + 600
            while time.time() < deadline and proc.poll() is None:
                try:
                    now_done = metric_total(port, "stylestream_events_total")
                except OSError:
                    time.sleep(0.2)
                    continue
                now = time.perf_counter()
                cpu, redis_cpu = cpu_seconds(proc.pid), cpu_seconds(svc.redis_pid)
                if now_done > 0 and first is None:
                    first, done_at_first = now, now_done
                    cpu_first, redis_first = cpu, redis_cpu
                if now_done > done:
                    bar.update(int(now_done - done))
                    done, last = now_done, now
                    cpu_last, redis_last = cpu, redis_cpu
                if done >= len(events):
                    break
                time.sleep(0.05)
        stop_processes(proc)
    if first is None or last is None or done < len(events):
        raise RuntimeError(f"{label} applied {done:.0f}/{len(events)} events; see "
                           f"{workdir / 'worker.log'}")
    # events applied before the first poll saw any are not timed: count only those after it
    timed = max(done - done_at_first, 1.0)
    return {"variant": label, "kind": variant, "events": len(events), "seconds": last - first,
            "events_per_s": (done - done_at_first) / max(last - first, 1e-9),
            "worker_cpu_us_per_event": (cpu_last - cpu_first) / timed * 1e6,
            "redis_cpu_us_per_event": (redis_last - redis_first) / timed * 1e6,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc``; its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    return {"variant": "raw pipelined Redis (no Kafka)", "kind": "raw", "events": len(events),
            "seconds": seconds, "events_per_s": len(events) / seconds}


def freshness_under_load(rate: float, seconds: float, variant: str, users: int, items: int,
                         workdir: Path) -> dict:
    """Both workers up (ingest ``variant``: ``stream`` or ``plain``, and ``rerank``); offer
    ``rate`` events/s for ``seconds``; freshness of the lists that come back, the load average
    before and after, and whether the pipeline kept up (:func:`saturated`)."""
    from kafka import KafkaConsumer, KafkaProducer

    label = LABELS[variant]
    load_before = os.getloadavg()[0]
    with start_services(partitions=4, workdir=str(workdir)) as svc:
        ingest, _ = worker(svc, variant, log=workdir / "stream.log")
        rerank, rerank_port = worker(svc, "rerank", log=workdir / "rerank.log")
        lags: list[float] = []
        list_hops: list[float] = []  # list built (generated_at) → received here
        stop_reading, warmed = threading.Event(), threading.Event()

        def read() -> None:
            consumer = KafkaConsumer("recommendations", bootstrap_servers=svc.kafka_url,
                                     enable_auto_commit=False,
                                     auto_offset_reset="latest",
                                     fetch_max_wait_ms=fetch_wait_ms_from_env(),
                                     consumer_timeout_ms=200)
            while not stop_reading.is_set():
                for record in consumer:
                    msg = json.loads(record.value)
                    if msg["user_id"] != "warm-up":
                        now = time.time()
                        lags.append(now - msg["source_event_time"])
                        list_hops.append(now - msg["generated_at"])
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
        events = synthetic_events(int(rate * seconds), users, items, seed=3,
                                  prefix=f"f{rate:.0f}-")
        pids = {"ingest": ingest.pid, "rerank": rerank.pid, "redis": svc.redis_pid,
                "broker": svc.kafka_pid, "bench (generator + reader)": os.getpid()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        stages_before = stage_buckets(rerank_port)
        # the reader is the measuring instrument: a full collection pass over this process's
        # heap (the generated events) would stop it, not the pipeline, and count as freshness
        gc.collect()
        gc.freeze()
        started = time.time()
        for k, e in enumerate(progress(events, desc=f"freshness: {variant} @ {rate:,.0f}/s",
                                       unit="ev")):
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
        window = time.time() - started
        cores = {name: (cpu_seconds(pid) - cpu_before[name]) / window
                 for name, pid in pids.items()}
        stop_reading.set()
        reader.join(timeout=5)
        stages = stage_quantiles(stages_before, stage_buckets(rerank_port))
        gc.unfreeze()
        stop_processes(ingest, rerank)
    if not lags:
        raise RuntimeError(f"no lists came back for the {label}; see {workdir}")
    q = statistics.quantiles(lags, n=100)
    quarter = max(1, len(lags) // 4)
    result = {"variant": label, "kind": variant, "target_events_per_s": rate,
              "offered_events_per_s": offered, "lists": len(lags),
              "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": max(lags) * 1000,
              "first_quarter_p50_ms": statistics.median(lags[:quarter]) * 1000,
              "last_quarter_p50_ms": statistics.median(lags[-quarter:]) * 1000,
              "load_before": load_before, "load_after": os.getloadavg()[0],
              "cores_busy": cores}
    hops = statistics.quantiles(list_hops, n=100)
    result["stages"] = {**stages, "list": {"p50_ms": hops[49] * 1000, "p99_ms": hops[98] * 1000}}
    result["saturated"] = saturated(result)
    return result


def saturated(point: dict) -> str:
    """Why a freshness run shows the pipeline falling behind its offered load ("" if it kept
    up): the load generator could not offer the rate, or lists come back later and later (the
    median lag of the last quarter of the lists over 1 s and over three times the first
    quarter's: a backlog grew), or the median list is over a second old."""
    if point["offered_events_per_s"] < 0.95 * point["target_events_per_s"]:
        return "generator short of the rate"
    if point["last_quarter_p50_ms"] > max(1000.0, 3 * point["first_quarter_p50_ms"]):
        return "backlog grew"
    if point["p50_ms"] > 1000.0:
        return "median over 1 s"
    return ""


def freshness_curve(loads: list[float], seconds: float, users: int, items: int,
                    workdir: Path) -> list[dict]:
    """The product's freshness at each offered load in turn (fresh services each), up to and
    including the first load at which it falls behind."""
    points = []
    for rate in loads:
        point = freshness_under_load(rate, seconds, "stream", users, items,
                                     workdir / f"curve-{rate:.0f}")
        points.append(point)
        print(f"  {rate:>8,.0f} ev/s offered {point['offered_events_per_s']:,.0f}: "
              f"p50 {point['p50_ms']:.0f} ms, p99 {point['p99_ms']:.0f} ms, load "
              f"{point['load_before']:.1f} → {point['load_after']:.1f}; cores busy: "
              + ", ".join(f"{k} {v:.2f}" for k, v in point["cores_busy"].items())
              + (f"  SATURATED: {point['saturated']}" if point["saturated"] else ""),
              flush=True)
        if point["saturated"]:
            break
    return points


#: Freshness targets of the curve: offered events/s → p99 ms.
P99_TARGETS_MS = {1000.0: 100.0, 5000.0: 250.0}


def plot_curve(points: list[dict], path: Path) -> None:
    """p50 and p99 freshness against the offered load, targets marked, saturation shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [p["offered_events_per_s"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(x, [p["p50_ms"] for p in points], "o-", label="p50")
    ax.plot(x, [p["p99_ms"] for p in points], "s-", label="p99")
    ax.scatter(list(P99_TARGETS_MS), list(P99_TARGETS_MS.values()), marker="x", color="red",
               zorder=5, label="p99 target")
    for p in points:
        if p["saturated"]:
            ax.axvspan(p["offered_events_per_s"] * 0.97, max(x) * 1.05, color="grey",
                       alpha=0.2, label=f"saturated ({p['saturated']})")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, events/s")
    ax.set_ylabel("freshness, ms (list received − event time)")
    loads = [f"{p['load_before']:.1f}" for p in points]
    ax.set_title(f"Freshness vs load, both workers + broker + Redis on {os.cpu_count()} cores\n"
                 f"load average before each run: {', '.join(loads)}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def throughput_table(throughput: list[dict]) -> list[str]:
    by_kind = {r["kind"]: r for r in throughput}
    base = by_kind["plain"]["events_per_s"]
    ceiling = by_kind["ceiling"]["events_per_s"]
    lines = ["| variant | events | events/s | × plain agent | × ceiling | worker CPU µs/event | "
             "Redis CPU µs/event | load before → after |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in throughput:
        cells = [r["variant"], str(r["events"]), f"{r['events_per_s']:,.0f}",
                 f"{r['events_per_s'] / base:.1f}", f"{r['events_per_s'] / ceiling:.2f}"]
        if "load_before" in r:
            cells += [f"{r['worker_cpu_us_per_event']:.0f}", f"{r['redis_cpu_us_per_event']:.0f}",
                      f"{r['load_before']:.1f} → {r['load_after']:.1f}"]
        else:
            cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def freshness_table(freshness: list[dict]) -> list[str]:
    lines = ["| variant | target ev/s | offered ev/s | lists | p50 ms | p99 ms | max ms | "
             "load before → after | cores busy: ingest / rerank / Redis / broker / bench | "
             "saturated |", "|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    lines += [f"| {r['variant']} | {r['target_events_per_s']:,.0f} | "
              f"{r['offered_events_per_s']:,.0f} | {r['lists']} | {r['p50_ms']:.0f} | "
              f"{r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['load_before']:.1f} → "
              f"{r['load_after']:.1f} | "
              + " / ".join(f"{v:.2f}" for v in r["cores_busy"].values())
              + f" | {r['saturated'] or 'no'} |" for r in freshness]
    return lines


#: What each stage of :func:`stages_table` covers.
STAGE_LABELS = {
    "ingest": "event sent → trigger sent (hop 1, ingest batch, Redis)",
    "trigger": "trigger sent → taken by rerank (hop 2, queue)",
    "rank": "taken → list built (Redis reads, recall, scoring)",
    "publish": "built → acknowledged (Kafka + rec:{user})",
    "list": "built → received by the bench's reader (publish + hop 3)",
}


def stages_table(freshness: list[dict]) -> list[str]:
    """Where the freshness goes: p50 / p99 ms of each stage, one column per run. The rerank
    worker's stages come from its histogram (interpolated in 1–50 ms buckets); ``list`` is
    exact. Stage quantiles do not add up to the end-to-end ones."""
    runs = [r for r in freshness if r.get("stages")]
    if not runs:
        return []
    lines = ["| stage, p50 / p99 ms | " + " | ".join(
                 f"{r['kind']} @ {r['target_events_per_s']:,.0f}/s" for r in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for stage, label in STAGE_LABELS.items():
        cells = [f"{r['stages'][stage]['p50_ms']:.1f} / {r['stages'][stage]['p99_ms']:.1f}"
                 if stage in r["stages"] else "–" for r in runs]
        lines.append(f"| {stage}: {label} | " + " | ".join(cells) + " |")
    lines.append("| end to end (received − event sent) | " + " | ".join(
        f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}" for r in runs) + " |")
    return lines


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    work = out.parent / "ingest-work"
    work.mkdir(parents=True, exist_ok=True)
    events = synthetic_events(args.events, args.users, args.items, seed=1, prefix="b")
    single_events = events[: args.single_events]
    throughput = [] if args.only in ("freshness", "curve") else [
        agent_throughput(events, "ceiling", work / "ceiling"),
        agent_throughput(events, "stream", work / "batched"),
        agent_throughput(single_events, "plain", work / "single"),
        raw_redis_throughput(events, work / "raw"),
    ]
    freshness = [] if args.only in ("throughput", "curve") else [
        freshness_under_load(args.load, args.load_seconds, variant, args.users, args.items,
                             work / f"fresh-{variant}") for variant in ("stream", "plain")]
    curve = [] if args.only != "curve" else freshness_curve(
        [float(x) for x in args.loads.split(",")], args.load_seconds, args.users, args.items,
        work)
    lines = []
    if throughput:
        lines += throughput_table(throughput)
        ratio = throughput[1]["events_per_s"] / throughput[0]["events_per_s"]
        lines += ["", f"product / ceiling: {ratio:.2f}"]
    if freshness or curve:
        lines += [""] + freshness_table(freshness + curve)
        lines += [""] + stages_table(freshness + curve)
    table = "\n".join(lines)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"throughput": throughput, "freshness": freshness, "curve": curve,
                    "cpu_count": os.cpu_count(), "table": table}
    if curve:
        plot = out.with_name(out.stem + "-freshness_vs_load.png")
        plot_curve(curve, plot)
        result["plot"] = str(plot)
        print(f"plot: {plot}")
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(bench_agent_main(sys.argv[1:]))
