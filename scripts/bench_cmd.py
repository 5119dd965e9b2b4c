"""``stylestream bench ingest|rerank|memory|scaling|faults|storage``: benchmarks (each beside a
baseline) and faults."""

from __future__ import annotations

import argparse
import importlib


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline measured alongside)")
    kinds = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    ingest = kinds.add_parser("ingest", help="ingest events/s and end-to-end freshness")
    from scripts.bench_ingest import add_arguments

    add_arguments(ingest)
    ingest.set_defaults(func=lambda args: importlib.import_module("scripts.bench_ingest")
                        .run(args))
    faults = kinds.add_parser("faults", help="fault suite under a steady load: worker kills, "
                                             "Redis freeze/restart, broker restart, handover")
    from scripts.bench_faults import add_arguments as add_fault_arguments

    add_fault_arguments(faults)
    faults.set_defaults(func=lambda args: importlib.import_module("scripts.bench_faults")
                        .run(args))
    storage = kinds.add_parser("storage", help="Tansu storage engines of the embedded stack: "
                                               "start, produce, consume, restart")
    from scripts.bench_storage import add_arguments as add_storage_arguments

    add_storage_arguments(storage)
    storage.set_defaults(func=lambda args: importlib.import_module("scripts.bench_storage")
                         .run(args))
    try:
        rerank = importlib.import_module("scripts.bench_rerank")
    except ModuleNotFoundError as exc:
        if exc.name != "scripts.bench_rerank":
            raise
    else:
        rerank.register(kinds)
    from scripts.bench_memory import register as register_memory
    from scripts.bench_scaling import register as register_scaling

    register_memory(kinds)
    register_scaling(kinds)
