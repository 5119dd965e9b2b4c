"""Retrying a call while a service is unreachable: the workers' one capped backoff loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def retry_until_done(call: Callable[[], Awaitable[T]],
                           errors: tuple[type[BaseException], ...],
                           on_error: Callable[[BaseException, float], None],
                           stop: asyncio.Event | None = None) -> T:
    """``await call()`` until it succeeds; after each failure in ``errors``, ``on_error(exc,
    delay)`` and a sleep of ``delay`` (0.1 s, doubling up to 5 s). Nothing is dropped: an
    unreachable service holds the batch (at-least-once). Once ``stop`` is set, a failure is
    raised instead of retried (the worker is shutting down)."""
    delay = 0.1
    while True:
        try:
            return await call()
        except errors as exc:
            if stop is not None and stop.is_set():
                raise
            on_error(exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
