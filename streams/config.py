"""Runtime configuration, read from ``STYLESTREAM_*`` environment variables and validated at start.

Every default is documented in place (the Gorse habit: one config object, defaults beside it).
A bad value raises :class:`ConfigError` with the variable's name and what was expected, before
any worker touches Kafka or Redis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.behaviors import BEHAVIORS, DEFAULT_WEIGHTS
from streams.redact import redact, register_secret

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


#: ``STYLESTREAM_LOG_FORMAT`` (or ``--log-format``): ``text`` lines, or one JSON object a line.
LOG_FORMATS: tuple[str, ...] = ("text", "json")


def log_format_from_env(env: dict[str, str] | None = None) -> str:
    """The validated ``STYLESTREAM_LOG_FORMAT`` (default ``text``); readable before the rest
    of the settings, since logging is set up first."""
    raw = (os.environ if env is None else env).get("STYLESTREAM_LOG_FORMAT") or "text"
    if raw not in LOG_FORMATS:
        raise ConfigError(f"STYLESTREAM_LOG_FORMAT={raw!r}: expected one of "
                          f"{', '.join(LOG_FORMATS)}")
    return raw


@dataclass(frozen=True)
class Topics:
    """Topic names of the contract (docs/design.md, "Topic contracts")."""

    events: str = "behavior-events"
    dead_letter: str = "behavior-events-dlq"
    refresh: str = "rec-refresh"
    catalog: str = "catalog-updates"
    recommendations: str = "recommendations"

    def partitions(self, default: int) -> dict[str, int]:
        """Partition count of each topic, keyed by name (all keyed topics share the count)."""
        return {name: default for name in (self.events, self.dead_letter, self.refresh,
                                           self.catalog, self.recommendations)}


class DecaySettings(BaseModel):
    """Parameters of Eq. 1–3 and of the bounded-memory rules around them.

    ``rebase_bound``: once ``λ·(t − r_u)`` passes it the user is rebased (docs/design.md); 50 keeps
    ``exp`` far inside float64 range (e^50 ≈ 5e21) while rebasing a user at most every
    ``50/λ`` = 1000 days at λ = 0.05.
    """

    model_config = ConfigDict(frozen=True)

    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    decay_per_day: float = Field(0.05, ge=0.0, le=10.0)
    rebase_bound: float = Field(50.0, gt=0.0, le=500.0)
    max_items_per_user: int = Field(500, ge=1)
    ttl_seconds: int = Field(90 * 86400, ge=60)
    #: Dedupe window in PROCESSING time: a user's seen event ids are forgotten this long after
    #: they arrived (never by event time), so it must exceed any redelivery delay.
    dedupe_ttl_seconds: int = Field(7 * 86400, ge=60)
    #: Most seen event ids kept per user inside the window (earliest arrivals forgotten first).
    dedupe_max_ids: int = Field(100_000, ge=1)
    #: Popularity and co-visitation counters are spread over this many hash tags (``{g0}`` ..,
    #: by item hash; summed/merged on read) so that on Redis Cluster no one slot takes every
    #: batch. Fixed for the life of the data, like the user shards.
    global_shards: int = Field(8, ge=1, le=1024)

    @field_validator("weights")
    @classmethod
    def _all_behaviors_weighted(cls, weights: dict[str, float]) -> dict[str, float]:
        missing = [b for b in BEHAVIORS if b not in weights]
        unknown = [b for b in weights if b not in BEHAVIORS]
        if missing or unknown:
            raise ValueError(f"weights need exactly {list(BEHAVIORS)}; missing {missing}, "
                             f"unknown {unknown}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must be non-negative")
        return {b: float(weights[b]) for b in BEHAVIORS}

    @property
    def decay_per_second(self) -> float:
        return self.decay_per_day / 86400.0


class InputLimits(BaseModel):
    """What hostile or broken input may not exceed (event contract and catalog updates)."""

    model_config = ConfigDict(frozen=True)

    #: Largest message value accepted (bytes); larger ones are dead-lettered / refused unread.
    max_message_bytes: int = Field(256 * 1024, ge=256)
    #: Longest identifier (event, user, item, session, store id) in characters.
    max_id_length: int = Field(256, ge=8)
    #: Earliest accepted event time (epoch s; default 2000-01-01: earlier is a unit error).
    min_timestamp: float = Field(946_684_800.0, ge=0.0)
    #: Producer clock skew allowed: later event times are refused as "from the future".
    max_future_seconds: float = Field(86_400.0, ge=0.0)


#: ``STYLESTREAM_KAFKA_SECURITY_PROTOCOL`` values (Kafka's own names).
KAFKA_SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: ``STYLESTREAM_KAFKA_SASL_MECHANISM`` values.
KAFKA_SASL_MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client authenticates (SASL) and encrypts (TLS): ``STYLESTREAM_KAFKA_*``.

    Turned into client arguments in one place only: :func:`streams.security.kafka_client_kwargs`.
    Passwords are left out of ``repr`` and masked in logs (:mod:`streams.redact`).
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class RedisSecurity:
    """Redis ACL credentials and TLS files (``STYLESTREAM_REDIS_*``); TLS itself is chosen by a
    ``rediss://`` URL. Turned into client arguments by :func:`streams.security.redis_client_kwargs`.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to start: service URLs, topics, decay parameters."""

    kafka_url: str | None = None
    redis_url: str | None = None
    home: str = "var"
    partitions: int = 4
    log_format: str = "text"
    #: seconds a command or probe waits for Kafka or Redis to answer (STYLESTREAM_SERVICE_TIMEOUT)
    service_timeout: float = 5.0
    #: address the workers' metrics/health server binds (STYLESTREAM_METRICS_HOST)
    metrics_host: str = "127.0.0.1"
    #: longest a consumer fetch waits for data, ms (STYLESTREAM_FETCH_WAIT_MS): Tansu answers a
    #: fetch only when this wait expires, so it is a floor on every hop's latency
    fetch_wait_ms: int = 10
    decay: DecaySettings = field(default_factory=DecaySettings)
    limits: InputLimits = field(default_factory=InputLimits)
    topics: Topics = field(default_factory=Topics)
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    redis_security: RedisSecurity = field(default_factory=RedisSecurity)
    #: behaviours that take an item out of a shopper's lists (STYLESTREAM_EXCLUDE_BEHAVIORS)
    exclude_behaviors: frozenset[str] = frozenset({"purchase"})
    #: diversity step: items of one catalog category in a Top-5 at most
    #: (STYLESTREAM_MAX_PER_CATEGORY), the visual cosine above which two items are
    #: near-duplicates (STYLESTREAM_DUPLICATE_COSINE), and the shopper's own items in a Top-5 at
    #: most (STYLESTREAM_MAX_REPEATS; unset = no cap, the ranker decides)
    max_per_category: int = 2
    duplicate_cosine: float = 0.97
    max_repeats: int | None = None
    #: w of the final list's repeat/explore composition (serving/explore.py): a new-to-shopper
    #: hit counts 1 + w times a repeat's (STYLESTREAM_EXPLORE_WEIGHT; 0 = order by chance of a
    #: hit; used with the final ranker, whose scores are calibrated; 0.25 is the Taobao category
    #: replay's choice on its validation cut)
    explore_weight: float = 0.25
    #: ingest batches close at ``batch_max`` events or ``batch_within`` seconds (``stream``;
    #: STYLESTREAM_BATCH_WITHIN_MS): Faust's ``take_events`` waits the whole ``batch_within``
    #: before each batch unless ``batch_max`` arrive first, so every event waits up to it;
    #: shorter is not fresher end to end: at 5 ms four times as many small batches and trigger
    #: sends load the broker, and p50/p99 freshness at 1,000 ev/s got worse (74-85 / 151-255 ms
    #: against 58-66 / 131-159 ms at 20 ms, idle box, BENCHMARKS.md)
    batch_max: int = 1000
    batch_within: float = 0.020
    #: consumer group of the rerank workers (they split ``rec-refresh`` partitions)
    rerank_group: str = "stylestream-rerank"
    #: lifetime of a published list in Redis (``rec:{user}``)
    rec_ttl_seconds: int = 7 * 86400

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port`` form of the Kafka URL (accepts ``kafka://``, ``tcp://`` or bare)."""
        if not self.kafka_url:
            raise ConfigError("STYLESTREAM_KAFKA is not set: run `stylestream up` and export "
                              "what it prints, or point it at a broker (host:port)")
        return strip_scheme(self.kafka_url)

    @property
    def redis(self) -> str:
        if not self.redis_url:
            raise ConfigError("STYLESTREAM_REDIS is not set: run `stylestream up` and export "
                              "what it prints, or point it at redis://host:port/0")
        return self.redis_url

    def with_services(self, kafka_url: str, redis_url: str) -> Settings:
        return replace(self, kafka_url=kafka_url, redis_url=redis_url)


def strip_scheme(url: str) -> str:
    """``kafka://h:p`` / ``tcp://h:p`` / ``h:p`` → ``h:p`` (comma-separated lists kept)."""
    return ",".join(part.split("://", 1)[-1].strip("/") for part in url.split(","))


def _env_value(env: dict[str, str], name: str, default: T, convert: Callable[[str], T],
               expected: str) -> T:
    """``convert(env[name])``, ``default`` when unset or empty; a bad value names the variable."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not {expected}") from exc


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    return _env_value(env, name, default, float, "a number")


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    return _env_value(env, name, default, int, "an integer")


def fetch_wait_ms_from_env(env: Mapping[str, str] | None = None) -> int:
    """The validated ``STYLESTREAM_FETCH_WAIT_MS`` (default :attr:`Settings.fetch_wait_ms`);
    readable on its own by the Kafka clients that are built without a :class:`Settings`."""
    env = os.environ if env is None else env
    wait = _env_int(dict(env), "STYLESTREAM_FETCH_WAIT_MS", Settings.fetch_wait_ms)
    if not 1 <= wait <= 10_000:
        raise ConfigError(f"STYLESTREAM_FETCH_WAIT_MS={wait!r}: expected milliseconds in "
                          "[1, 10000]")
    return wait


def parse_weights(raw: str) -> dict[str, float]:
    """Weights from JSON (``{"view":1,...}``) or ``view=1,favorite=3,cart=5,purchase=10``."""
    raw = raw.strip()
    try:
        if raw.startswith("{"):
            parsed = json.loads(raw)
        else:
            parsed = {}
            for part in filter(None, (p.strip() for p in raw.split(","))):
                name, _, value = part.partition("=")
                parsed[name.strip()] = float(value)
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"STYLESTREAM_WEIGHTS={raw!r}: expected JSON or "
                          "view=1,favorite=3,cart=5,purchase=10") from exc


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from the environment; raises :class:`ConfigError` with a clear message."""
    env = dict(os.environ if env is None else env)
    weights = dict(DEFAULT_WEIGHTS)
    if env.get("STYLESTREAM_WEIGHTS"):
        weights.update(parse_weights(env["STYLESTREAM_WEIGHTS"]))
    try:
        decay = DecaySettings(weights=weights,
                              **_env_fields(env, DecaySettings(), DECAY_VARIABLES))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = '.'.join(map(str, first['loc']))
        variable = DECAY_VARIABLES.get(name.split(".")[0], "STYLESTREAM_WEIGHTS")
        raise ConfigError(f"{variable}: invalid decay setting {name}: {first['msg']}") from exc
    limits = _input_limits(env)
    partitions = _env_int(env, "STYLESTREAM_PARTITIONS", Settings.partitions)
    if partitions < 1:
        raise ConfigError("STYLESTREAM_PARTITIONS must be >= 1")
    service_timeout = _env_float(env, "STYLESTREAM_SERVICE_TIMEOUT", Settings.service_timeout)
    if not 0 < service_timeout <= 600:
        raise ConfigError(f"STYLESTREAM_SERVICE_TIMEOUT={service_timeout!r}: expected seconds "
                          "in (0, 600]")
    fetch_wait_ms = fetch_wait_ms_from_env(env)
    batch_within_ms = _env_float(env, "STYLESTREAM_BATCH_WITHIN_MS",
                                 Settings.batch_within * 1000)
    if not 0.1 <= batch_within_ms <= 10_000:
        raise ConfigError(f"STYLESTREAM_BATCH_WITHIN_MS={batch_within_ms!r}: expected "
                          "milliseconds in [0.1, 10000]")
    metrics_host = (env.get("STYLESTREAM_METRICS_HOST") or Settings.metrics_host).strip()
    if not metrics_host or any(c.isspace() or c == "/" for c in metrics_host):
        raise ConfigError(f"STYLESTREAM_METRICS_HOST={metrics_host!r}: expected an address to "
                          "bind, e.g. 127.0.0.1 or 0.0.0.0")
    redis_url = env.get("STYLESTREAM_REDIS") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"STYLESTREAM_REDIS={redact(redis_url)!r}: expected "
                          "redis://host:port/db")
    exclude = Settings.exclude_behaviors
    if env.get("STYLESTREAM_EXCLUDE_BEHAVIORS") is not None:
        exclude = frozenset(b.strip() for b in env["STYLESTREAM_EXCLUDE_BEHAVIORS"].split(",")
                            if b.strip())
        unknown = sorted(exclude - set(BEHAVIORS))
        if unknown:
            raise ConfigError(f"STYLESTREAM_EXCLUDE_BEHAVIORS: unknown behaviour(s) {unknown}; "
                              f"expected a comma-separated subset of {list(BEHAVIORS)}")
    max_per_category = _env_int(env, "STYLESTREAM_MAX_PER_CATEGORY", Settings.max_per_category)
    if max_per_category < 1:
        raise ConfigError("STYLESTREAM_MAX_PER_CATEGORY must be >= 1")
    duplicate_cosine = _env_float(env, "STYLESTREAM_DUPLICATE_COSINE",
                                  Settings.duplicate_cosine)
    if not -1.0 <= duplicate_cosine <= 1.0:
        raise ConfigError("STYLESTREAM_DUPLICATE_COSINE must be within [-1, 1]")
    max_repeats = (None if not env.get("STYLESTREAM_MAX_REPEATS")
                   else _env_int(env, "STYLESTREAM_MAX_REPEATS", 0))
    if max_repeats is not None and max_repeats < 0:
        raise ConfigError("STYLESTREAM_MAX_REPEATS must be >= 0")
    explore_weight = _env_float(env, "STYLESTREAM_EXPLORE_WEIGHT", Settings.explore_weight)
    if not 0.0 <= explore_weight < float("inf"):
        raise ConfigError("STYLESTREAM_EXPLORE_WEIGHT must be a finite number >= 0")
    return Settings(
        exclude_behaviors=exclude,
        max_per_category=max_per_category,
        duplicate_cosine=duplicate_cosine,
        max_repeats=max_repeats,
        explore_weight=explore_weight,
        kafka_url=env.get("STYLESTREAM_KAFKA") or None,
        redis_url=redis_url,
        home=env.get("STYLESTREAM_HOME") or Settings.home,
        partitions=partitions,
        log_format=log_format_from_env(env),
        service_timeout=service_timeout,
        metrics_host=metrics_host,
        fetch_wait_ms=fetch_wait_ms,
        batch_within=batch_within_ms / 1000,
        decay=decay,
        limits=limits,
        kafka_security=kafka_security_from_env(env),
        redis_security=redis_security_from_env(env, redis_url),
    )


def _env_file(env: dict[str, str], name: str) -> str | None:
    """A path setting that must name a readable file when set."""
    raw = env.get(name) or None
    if raw is not None and not (os.path.isfile(raw) and os.access(raw, os.R_OK)):
        raise ConfigError(f"{name}={raw!r}: no readable file there")
    return raw


def kafka_security_from_env(env: dict[str, str]) -> KafkaSecurity:
    """``STYLESTREAM_KAFKA_SECURITY_PROTOCOL``, ``_SASL_*`` and ``_SSL_*``, checked together."""
    protocol = (env.get("STYLESTREAM_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").strip().upper()
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise ConfigError(f"STYLESTREAM_KAFKA_SECURITY_PROTOCOL={protocol!r}: expected one of "
                          f"{', '.join(KAFKA_SECURITY_PROTOCOLS)}")
    mechanism = (env.get("STYLESTREAM_KAFKA_SASL_MECHANISM") or "PLAIN").strip().upper()
    if mechanism not in KAFKA_SASL_MECHANISMS:
        raise ConfigError(f"STYLESTREAM_KAFKA_SASL_MECHANISM={mechanism!r}: expected one of "
                          f"{', '.join(KAFKA_SASL_MECHANISMS)}")
    username = env.get("STYLESTREAM_KAFKA_SASL_USERNAME") or None
    password = env.get("STYLESTREAM_KAFKA_SASL_PASSWORD") or None
    register_secret(password)
    security = KafkaSecurity(
        protocol=protocol, sasl_mechanism=mechanism, sasl_username=username,
        sasl_password=password,
        ssl_cafile=_env_file(env, "STYLESTREAM_KAFKA_SSL_CAFILE"),
        ssl_certfile=_env_file(env, "STYLESTREAM_KAFKA_SSL_CERTFILE"),
        ssl_keyfile=_env_file(env, "STYLESTREAM_KAFKA_SSL_KEYFILE"))
    if security.uses_sasl and not (username and password):
        raise ConfigError("STYLESTREAM_KAFKA_SASL_USERNAME and STYLESTREAM_KAFKA_SASL_PASSWORD "
                          f"are required with STYLESTREAM_KAFKA_SECURITY_PROTOCOL={protocol}")
    if not security.uses_sasl and (username or password):
        raise ConfigError("STYLESTREAM_KAFKA_SASL_USERNAME/_PASSWORD are set but "
                          f"STYLESTREAM_KAFKA_SECURITY_PROTOCOL={protocol} does not authenticate: "
                          "use SASL_PLAINTEXT or SASL_SSL")
    tls_files = [n for n, v in (("STYLESTREAM_KAFKA_SSL_CAFILE", security.ssl_cafile),
                                ("STYLESTREAM_KAFKA_SSL_CERTFILE", security.ssl_certfile),
                                ("STYLESTREAM_KAFKA_SSL_KEYFILE", security.ssl_keyfile)) if v]
    if tls_files and not security.uses_tls:
        raise ConfigError(f"{tls_files[0]} is set but STYLESTREAM_KAFKA_SECURITY_PROTOCOL="
                          f"{protocol} does not use TLS: use SSL or SASL_SSL")
    if security.ssl_keyfile and not security.ssl_certfile:
        raise ConfigError("STYLESTREAM_KAFKA_SSL_KEYFILE needs STYLESTREAM_KAFKA_SSL_CERTFILE")
    return security


def redis_security_from_env(env: dict[str, str], redis_url: str | None) -> RedisSecurity:
    """``STYLESTREAM_REDIS_USERNAME``/``_PASSWORD`` (ACL) and ``_CA_FILE``/``_CERTFILE``/
    ``_KEYFILE`` (TLS, with a ``rediss://`` URL), checked against the URL."""
    username = env.get("STYLESTREAM_REDIS_USERNAME") or None
    password = env.get("STYLESTREAM_REDIS_PASSWORD") or None
    register_secret(password)
    if redis_url:
        url_password = urlsplit(redis_url).password
        register_secret(url_password)
        register_secret(unquote(url_password or ""))
    security = RedisSecurity(
        username=username, password=password,
        ca_file=_env_file(env, "STYLESTREAM_REDIS_CA_FILE"),
        certfile=_env_file(env, "STYLESTREAM_REDIS_CERTFILE"),
        keyfile=_env_file(env, "STYLESTREAM_REDIS_KEYFILE"))
    if username and not password:
        raise ConfigError("STYLESTREAM_REDIS_USERNAME needs STYLESTREAM_REDIS_PASSWORD")
    if password and redis_url and "@" in redis_url.split("://", 1)[-1].split("/", 1)[0]:
        raise ConfigError("STYLESTREAM_REDIS_PASSWORD is set and STYLESTREAM_REDIS carries "
                          "credentials too: give them in one place")
    tls_files = [n for n, v in (("STYLESTREAM_REDIS_CA_FILE", security.ca_file),
                                ("STYLESTREAM_REDIS_CERTFILE", security.certfile),
                                ("STYLESTREAM_REDIS_KEYFILE", security.keyfile)) if v]
    if tls_files and not (redis_url or "").startswith("rediss://"):
        raise ConfigError(f"{tls_files[0]} is set but STYLESTREAM_REDIS is not a rediss:// URL "
                          "(TLS)")
    if security.keyfile and not security.certfile:
        raise ConfigError("STYLESTREAM_REDIS_KEYFILE needs STYLESTREAM_REDIS_CERTFILE")
    return security


#: Environment variable of each env-driven :class:`DecaySettings` field.
DECAY_VARIABLES: dict[str, str] = {
    "decay_per_day": "STYLESTREAM_DECAY_PER_DAY",
    "global_shards": "STYLESTREAM_GLOBAL_SHARDS",
    "rebase_bound": "STYLESTREAM_REBASE_BOUND",
    "max_items_per_user": "STYLESTREAM_MAX_ITEMS_PER_USER",
    "ttl_seconds": "STYLESTREAM_TTL_SECONDS",
    "dedupe_ttl_seconds": "STYLESTREAM_DEDUPE_WINDOW_SECONDS",
    "dedupe_max_ids": "STYLESTREAM_DEDUPE_MAX_IDS",
}

#: Environment variable of each :class:`InputLimits` field.
LIMIT_VARIABLES: dict[str, str] = {
    "max_message_bytes": "STYLESTREAM_MAX_MESSAGE_BYTES",
    "max_id_length": "STYLESTREAM_MAX_ID_LENGTH",
    "min_timestamp": "STYLESTREAM_MIN_TIMESTAMP",
    "max_future_seconds": "STYLESTREAM_MAX_FUTURE_SECONDS",
}


def _env_fields(env: dict[str, str], defaults: BaseModel,
                variables: dict[str, str]) -> dict[str, Any]:
    """Each field of ``variables`` read from its variable (an integer or a number, as its
    default), the default where unset."""
    values: dict[str, Any] = {}
    for name, variable in variables.items():
        default = getattr(defaults, name)
        reader = _env_int if isinstance(default, int) else _env_float
        values[name] = reader(env, variable, default)
    return values


def _input_limits(env: dict[str, str]) -> InputLimits:
    try:
        return InputLimits(**_env_fields(env, InputLimits(), LIMIT_VARIABLES))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{LIMIT_VARIABLES[str(first['loc'][0])]}: {first['msg']}") from exc
