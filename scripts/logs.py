"""Logging set-up shared by every ``stylestream`` command: text lines or one JSON object a line.

``stylestream [--log-format json] COMMAND`` (the workers also take ``--log-format`` after their
verb) or ``STYLESTREAM_LOG_FORMAT=json``. JSON lines carry ``time`` (UTC, ISO-8601), ``level``,
``logger``, ``message``, ``pid``, any ``extra=`` fields, and ``exception`` (the formatted
traceback, inside the one line) when there is one: ready for Loki, Elasticsearch or ``jq``.

Third-party clients (kafka-python, aiokafka, Faust, mode) log at WARNING and above unless
``--verbose``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from streams.config import LOG_FORMATS, log_format_from_env

#: libraries whose INFO chatter is not the project's
NOISY_LOGGERS: tuple[str, ...] = ("kafka", "aiokafka", "faust", "mode", "faiss.loader")

#: libraries' own diagnostics that read like failures to a user (kafka-python's "Task ran for
#: 0.13s (>0.100s threshold)" on a busy machine): ERROR and above only, unless ``--verbose``
DIAGNOSTIC_LOGGERS: tuple[str, ...] = ("kafka.net.selector",)

#: Kafka clients that log every failed reconnect (10 lines/s in an outage): the commands report
#: a service failure themselves (one line, ``streams.errors``; the workers' "unavailable" /
#: "back" lines), so these only speak under ``--verbose``/``--debug``
CHATTY_LOGGERS: tuple[str, ...] = ("kafka", "aiokafka")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: attributes every LogRecord has; anything else came from ``extra=`` and goes into the JSON
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, never spanning lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) \
                    else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def add_log_format_argument(parser: argparse.ArgumentParser, *, top_level: bool = False
                            ) -> None:
    """``--log-format text|json``; on a sub-command it only overrides when given."""
    parser.add_argument("--log-format", choices=LOG_FORMATS,
                        default=None if top_level else argparse.SUPPRESS,
                        help="log lines as text or one JSON object a line "
                             "(default: $STYLESTREAM_LOG_FORMAT, else text)")


def setup_logging(verbose: bool = False, log_format: str | None = None) -> str:
    """Configure the root logger on stderr; returns the format used. ``log_format`` None
    reads ``STYLESTREAM_LOG_FORMAT`` (a bad value raises ``ConfigError``)."""
    fmt = log_format or log_format_from_env()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.NOTSET if verbose else logging.WARNING)
    for diagnostic in DIAGNOSTIC_LOGGERS:
        logging.getLogger(diagnostic).setLevel(logging.NOTSET if verbose else logging.ERROR)
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.NOTSET if verbose else logging.CRITICAL)
    logging.captureWarnings(fmt == "json")  # a bare warning would break the JSON stream
    return fmt
