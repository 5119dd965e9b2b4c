"""``stylestream bench ingest|rerank|memory``: benchmarks, each beside a baseline in the same
run."""

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
