"""``stylestream`` console script: one verb per module under ``scripts/``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func=run`` (``run(args) -> int``). Modules keep heavy imports (torch, faust) inside ``run`` so
that ``stylestream scores`` answers without loading a network.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from scripts.logs import add_log_format_argument, setup_logging
from streams.config import ConfigError
from streams.errors import classify
from streams.redact import install_log_redaction, redact

#: verb → module; order is the order of ``stylestream --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "scripts.services_cmd",     # up, down
    "scripts.stream_cmd",       # stream
    "scripts.rerank_cmd",       # rerank
    "scripts.demo_cmd",         # demo
    "scripts.web_cmd",          # web
    "scripts.tail_cmd",         # tail
    "scripts.simulate_cmd",     # simulate
    "scripts.catalog_cmd",      # catalog
    "scripts.features_cmd",     # features
    "scripts.train_cmd",        # train
    "scripts.prepare_cmd",      # prepare (deployment init: catalog, features, network)
    "scripts.state_cmd",        # scores, recs
    "scripts.evaluate_cmd",     # evaluate
    "scripts.bench_cmd",        # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylestream",
        description="Streaming real-time fashion recommender (Kafka + Redis + multimodal "
                    "reranking). Services come from STYLESTREAM_KAFKA / STYLESTREAM_REDIS, "
                    "or are started embedded on loopback.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="debug logging, and full tracebacks for Kafka/Redis failures")
    add_log_format_argument(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)  # a broken command module fails loudly
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose = args.verbose or args.debug
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        setup_logging(verbose=args.verbose, log_format=args.log_format)
        install_log_redaction()  # no password of a URL or setting reaches a log line
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"stylestream: configuration error: {redact(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return service_failure_exit(exc, args)


def service_failure_exit(exc: Exception, args: argparse.Namespace) -> int:
    """A Kafka/Redis failure → one line on stderr and its exit code (README, "Exit codes");
    the traceback only with ``--debug``/``-v``. Anything else is re-raised."""
    from scripts.embedded import ServiceError

    failure = classify(exc, os.environ.get("STYLESTREAM_KAFKA") or "embedded",
                       os.environ.get("STYLESTREAM_REDIS") or "embedded")
    if failure is None and not isinstance(exc, ServiceError):
        raise exc
    if args.verbose:
        traceback.print_exc()
    line = failure.line() if failure is not None else str(exc)
    print(f"stylestream {args.command}: {redact(line)}", file=sys.stderr)
    return failure.exit_code if failure is not None else 69


if __name__ == "__main__":
    sys.exit(main())
