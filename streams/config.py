"""Runtime configuration, read from ``STYLESTREAM_*`` environment variables and validated at start.

Every default is documented in place (the Gorse habit: one config object, defaults beside it).
A bad value raises :class:`ConfigError` with the variable's name and what was expected, before
any worker touches Kafka or Redis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.behaviors import BEHAVIORS, DEFAULT_WEIGHTS

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
    dedupe_ttl_seconds: int = Field(7 * 86400, ge=60)

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


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to start: service URLs, topics, decay parameters."""

    kafka_url: str | None = None
    redis_url: str | None = None
    home: str = "var"
    partitions: int = 4
    log_format: str = "text"
    decay: DecaySettings = field(default_factory=DecaySettings)
    topics: Topics = field(default_factory=Topics)
    #: behaviours that take an item out of a shopper's lists (STYLESTREAM_EXCLUDE_BEHAVIORS)
    exclude_behaviors: frozenset[str] = frozenset({"purchase"})
    #: diversity step: items of one catalog category in a Top-5 at most
    #: (STYLESTREAM_MAX_PER_CATEGORY), the visual cosine above which two items are
    #: near-duplicates (STYLESTREAM_DUPLICATE_COSINE), and the shopper's own items in a Top-5 at
    #: most (STYLESTREAM_MAX_REPEATS; unset = no cap, the ranker decides)
    max_per_category: int = 2
    duplicate_cosine: float = 0.97
    max_repeats: int | None = None
    #: ingest batches close at ``batch_max`` events or ``batch_within`` seconds (``stream``)
    batch_max: int = 1000
    batch_within: float = 0.02
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
    defaults = DecaySettings()
    try:
        decay = DecaySettings(
            weights=weights,
            decay_per_day=_env_float(env, "STYLESTREAM_DECAY_PER_DAY", defaults.decay_per_day),
            rebase_bound=_env_float(env, "STYLESTREAM_REBASE_BOUND", defaults.rebase_bound),
            max_items_per_user=_env_int(env, "STYLESTREAM_MAX_ITEMS_PER_USER",
                                        defaults.max_items_per_user),
            ttl_seconds=_env_int(env, "STYLESTREAM_TTL_SECONDS", defaults.ttl_seconds),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"invalid decay setting {'.'.join(map(str, first['loc']))}: "
                          f"{first['msg']}") from exc
    partitions = _env_int(env, "STYLESTREAM_PARTITIONS", Settings.partitions)
    if partitions < 1:
        raise ConfigError("STYLESTREAM_PARTITIONS must be >= 1")
    redis_url = env.get("STYLESTREAM_REDIS") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"STYLESTREAM_REDIS={redis_url!r}: expected redis://host:port/db")
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
    return Settings(
        exclude_behaviors=exclude,
        max_per_category=max_per_category,
        duplicate_cosine=duplicate_cosine,
        max_repeats=max_repeats,
        kafka_url=env.get("STYLESTREAM_KAFKA") or None,
        redis_url=redis_url,
        home=env.get("STYLESTREAM_HOME") or Settings.home,
        partitions=partitions,
        log_format=log_format_from_env(env),
        decay=decay,
    )
