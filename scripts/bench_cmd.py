"""``stylestream bench ingest|rerank``: benchmarks, each beside a baseline in the same run."""

from __future__ import annotations

import argparse

from scripts import bench_ingest, bench_rerank


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline measured alongside)")
    kinds = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    ingest = kinds.add_parser("ingest", help="ingest events/s and end-to-end freshness")
    bench_ingest.add_arguments(ingest)
    ingest.set_defaults(func=bench_ingest.run)
    bench_rerank.register(kinds)
