"""Secrets out of logs and messages: the one redaction rule for URLs, errors and log records.

Two things are masked wherever text about a connection is printed or logged:

* the password part of a URL's user information (``rediss://app:s3cret@host`` →
  ``rediss://app:***@host``; a lone ``redis://:s3cret@host`` → ``redis://:***@host``), in any
  text, so an error that quotes a URL is safe too;
* every secret value registered with :func:`register_secret` (the Kafka SASL and Redis
  passwords of :class:`~streams.config.Settings` are registered when the settings are loaded),
  wherever it appears.

:func:`install_log_redaction` puts the same rule on the root logger's handlers, so a library
that logs a URL or echoes a password in an exception message is masked too.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

#: ``scheme://user:password@`` — the password is everything up to the last ``@`` before the
#: host (passwords may contain ``@``, ``:`` and ``/`` when not percent-encoded).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)"
                           r"(?P<password>[^\s'\"]*)@(?=[^\s@'\"]*(?:[\s'\"]|$))")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` from now on wherever :func:`redact` runs (empty values are ignored)."""
    if value:
        with _lock:
            _secrets.add(value)


def redact(text: object) -> str:
    """``text`` with URL passwords and registered secrets replaced by ``***``."""
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + (MASK if m.group("password") else "")
                            + "@", str(text))
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        out = out.replace(secret, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message and any exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put :class:`RedactingFilter` on every handler of ``logger`` (default: root), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
