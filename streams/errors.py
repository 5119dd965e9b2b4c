"""Service failures (Kafka, Redis) as one line for a person and one exit code for a script.

Every command reaches Kafka and Redis through client libraries (aiokafka, kafka-python,
redis-py) whose exceptions are long chains. :func:`classify` reduces any of them to a
:class:`ServiceFailure` of one :class:`FailureKind` — cannot connect, authentication failed,
timed out, unknown topic — naming the service, its URL without secrets and what to do.
``stylestream`` (``scripts/cli.py``) prints :meth:`ServiceFailure.line` and exits with
:attr:`FailureKind.exit_code`; the workers use the same classes for their wait-and-retry logs.

Exit codes follow ``sysexits.h``; configuration errors keep exit code 2.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from streams.redact import redact


class FailureKind(enum.Enum):
    """What went wrong talking to a service; the value is the process exit code."""

    CONNECT = 69        # EX_UNAVAILABLE: refused, unreachable, name not resolved, closed
    TIMEOUT = 75        # EX_TEMPFAIL: connected (or trying) but no answer within the timeout
    AUTH = 77           # EX_NOPERM: authentication or authorization refused
    UNKNOWN_TOPIC = 78  # EX_CONFIG: the broker answers but a topic of the contract is missing

    @property
    def exit_code(self) -> int:
        return int(self.value)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {FailureKind.CONNECT: "cannot connect", FailureKind.TIMEOUT: "timed out",
           FailureKind.AUTH: "authentication failed", FailureKind.UNKNOWN_TOPIC: "unknown topic"}

KAFKA, REDIS = "Kafka", "Redis"
ENV_VAR = {KAFKA: "STYLESTREAM_KAFKA", REDIS: "STYLESTREAM_REDIS"}

_ADVICE = {
    (KAFKA, FailureKind.CONNECT): "start the broker or point {var} at a reachable host:port "
                                  "(`stylestream up` starts one on loopback)",
    (KAFKA, FailureKind.TIMEOUT): "the broker accepted the connection but did not answer in "
                                  "time: check it is healthy, or raise "
                                  "STYLESTREAM_SERVICE_TIMEOUT",
    (KAFKA, FailureKind.AUTH): "the broker refused this client: check its listener's "
                               "security protocol and ACLs",
    (KAFKA, FailureKind.UNKNOWN_TOPIC): "create the topics with `stylestream topics` "
                                        "(partition count STYLESTREAM_PARTITIONS)",
    (REDIS, FailureKind.CONNECT): "start redis-server or point {var} at a reachable "
                                  "redis://host:port/db (`stylestream up` starts one on loopback)",
    (REDIS, FailureKind.TIMEOUT): "Redis accepted the connection but did not answer in time: "
                                  "check it is not paused or overloaded, or raise "
                                  "STYLESTREAM_SERVICE_TIMEOUT",
    (REDIS, FailureKind.AUTH): "put the right credentials in {var} "
                               "(redis://USER:PASSWORD@host:port/db)",
}


def redact_url(url: str | None) -> str:
    """``url`` without its password (``redis://u:secret@h:1/0`` → ``redis://u:***@h:1/0``;
    the rule of :func:`streams.redact.redact`)."""
    return redact(url) if url else "(not set)"


@dataclass(eq=False)
class ServiceFailure(Exception):
    """A service could not be used: which, where, what kind, and the library's words."""

    service: str            # KAFKA or REDIS
    kind: FailureKind
    url: str | None = None  # as configured; shown redacted
    detail: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.line())

    @property
    def exit_code(self) -> int:
        return self.kind.exit_code

    def line(self) -> str:
        """One line: ``Redis at redis://h:1/0: cannot connect (refused); start redis-server…``."""
        detail = " ".join(self.detail.split())
        if len(detail) > 160:
            detail = detail[:157] + "..."
        advice = _ADVICE[(self.service, self.kind)].format(var=ENV_VAR[self.service])
        return redact(f"{self.service} at {redact_url(self.url)}: {self.kind.label}"
                      f"{f' ({detail})' if detail else ''}; {advice}")

    def __str__(self) -> str:
        return self.line()


# --- mapping the client libraries' exceptions ------------------------------------------------

_KAFKA_AUTH = {"AuthenticationFailedError", "SaslAuthenticationFailedError",
               "SaslAuthenticationFailed", "UnsupportedSaslMechanismError",
               "AuthenticationMethodNotSupported", "IllegalSaslStateError",
               "TopicAuthorizationFailedError", "GroupAuthorizationFailedError",
               "ClusterAuthorizationFailedError", "TransactionalIdAuthorizationFailedError"}
_KAFKA_TIMEOUT = {"KafkaTimeoutError", "RequestTimedOutError"}
_KAFKA_CONNECT = {"NoBrokersAvailable", "KafkaConnectionError", "ConnectionError",
                  "NodeNotReadyError", "BrokerNotAvailableError"}
_KAFKA_TOPIC = {"UnknownTopicOrPartitionError", "InvalidTopicError"}
_REDIS_AUTH_REPLIES = ("NOAUTH", "WRONGPASS", "NOPERM", "invalid password",
                       "invalid username-password")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                todo.append(nxt)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _from_library(exc: BaseException) -> tuple[str, FailureKind] | None:
    module = type(exc).__module__ or ""
    names = _names(exc)
    if module.startswith("redis"):
        text = str(exc)
        if "AuthenticationError" in names or "AuthenticationWrongNumberOfArgsError" in names \
                or "NoPermissionError" in names or text.startswith(_REDIS_AUTH_REPLIES):
            return REDIS, FailureKind.AUTH
        if "TimeoutError" in names:
            return REDIS, FailureKind.TIMEOUT
        if "ConnectionError" in names:
            return REDIS, FailureKind.CONNECT
        return None
    if module.startswith(("kafka", "aiokafka")):
        if names & _KAFKA_AUTH:
            return KAFKA, FailureKind.AUTH
        if names & _KAFKA_TOPIC:
            return KAFKA, FailureKind.UNKNOWN_TOPIC
        if "Unable to bootstrap" in str(exc) or names & _KAFKA_CONNECT:
            return KAFKA, FailureKind.CONNECT
        if names & _KAFKA_TIMEOUT:
            return KAFKA, FailureKind.TIMEOUT
    return None


def classify(exc: BaseException, kafka_url: str | None = None,
             redis_url: str | None = None) -> ServiceFailure | None:
    """The :class:`ServiceFailure` behind ``exc`` (searching its causes), else ``None``.

    ``kafka_url`` / ``redis_url`` are the configured URLs named in the message.
    """
    for current in _chain(exc):
        if isinstance(current, ServiceFailure):
            return current
        found = _from_library(current)
        if found is not None:
            service, kind = found
            return ServiceFailure(service, kind, kafka_url if service == KAFKA else redis_url,
                                  f"{type(current).__name__}: {current}")
    return None
