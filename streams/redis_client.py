"""The one place a Redis client is made: a plain client, or redis-py's cluster client when the
server at the URL runs in cluster mode.

``STYLESTREAM_REDIS`` names one server. Before the first client is made we ask it
``INFO cluster``; ``cluster_enabled:1`` selects :class:`redis.asyncio.cluster.RedisCluster`
(sync: :class:`redis.cluster.RedisCluster`), which discovers the other nodes from that one, routes
each key to its slot's node and splits pipelines by node. Any node of a cluster will do.

The probe asks again for up to ``wait`` seconds (default: once), then lets redis-py's own error
through (``ConnectionError``, ``TimeoutError``: callers classify and retry those as before);
refused credentials fail at once (``AuthenticationError``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.redact import redact

log = logging.getLogger(__name__)

AsyncClient = aioredis.Redis | AsyncRedisCluster
SyncClient = redis.Redis | RedisCluster

#: Errors that mean "Redis is not serving right now" (a batch is retried, not dropped): a lost
#: connection or timeout, and on a cluster a failed-over or restarting node (CLUSTERDOWN,
#: TRYAGAIN, a slot with no known owner yet).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, ClusterDownError, TryAgainError,
    SlotNotCoveredError, OSError)


def is_cluster(url: str, wait: float = 0.0, **kwargs: Any) -> bool:
    """Whether the server at ``url`` reports ``cluster_enabled:1`` (``INFO cluster``);
    ``kwargs``: connection arguments (credentials, TLS files, timeouts) as for the client."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        pool = redis.ConnectionPool.from_url(url, **{"socket_connect_timeout": 2.0,
                                                     "socket_timeout": 5.0, **kwargs})
        pool.connection_kwargs["db"] = 0  # a cluster refuses SELECT; the db is checked after
        probe = redis.Redis(connection_pool=pool)
        try:
            return int(probe.info("cluster").get("cluster_enabled", 0)) == 1
        except AuthenticationError:
            raise  # refused credentials: asking again will not help
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.debug("Redis unavailable at %s (%s); asking again in %.1fs", redact(url),
                      redact(exc), delay)
            time.sleep(delay)
            delay = min(2 * delay, 2.0)
        finally:
            probe.close()
            pool.disconnect()


def _check_db(url: str) -> None:
    db = redis.connection.parse_url(url).get("db", 0)
    if db not in (0, None):
        raise ValueError(f"STYLESTREAM_REDIS={redact(url)!r}: a Redis Cluster has only "
                         "database 0")


def async_client(url: str, wait: float = 0.0, **kwargs: Any) -> AsyncClient:
    """An asyncio client for ``url`` (cluster-aware); ``kwargs`` go to ``from_url``."""
    if is_cluster(url, wait, **kwargs):
        _check_db(url)
        return AsyncRedisCluster.from_url(url, **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)


def sync_client(url: str, wait: float = 0.0, **kwargs: Any) -> SyncClient:
    """A blocking client for ``url`` (cluster-aware); ``kwargs`` go to ``from_url``."""
    if is_cluster(url, wait, **kwargs):
        _check_db(url)
        return RedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)
