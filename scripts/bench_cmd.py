"""``stylestream bench ingest|rerank|memory|scaling|faults|storage``: benchmarks (each beside a
baseline) and faults."""

from __future__ import annotations

import argparse

from scripts import bench_faults, bench_ingest, bench_rerank, bench_storage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline measured alongside)")
    kinds = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    ingest = kinds.add_parser("ingest", help="ingest events/s and end-to-end freshness")
    bench_ingest.add_arguments(ingest)
    ingest.set_defaults(func=bench_ingest.run)
    faults = kinds.add_parser("faults", help="fault suite under a steady load: worker kills, "
                                             "Redis freeze/restart, broker restart, handover")
    bench_faults.add_arguments(faults)
    faults.set_defaults(func=bench_faults.run)
    storage = kinds.add_parser("storage", help="Tansu storage engines of the embedded stack: "
                                               "start, produce, consume, restart")
    bench_storage.add_arguments(storage)
    storage.set_defaults(func=bench_storage.run)
    bench_rerank.register(kinds)
    from scripts.bench_memory import register as register_memory
    from scripts.bench_scaling import register as register_scaling

    register_memory(kinds)
    register_scaling(kinds)
