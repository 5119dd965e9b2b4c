"""A Faust Kafka transport with a short fetch wait, registered as ``stylestream://``.

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. A broker that answers a fetch
only when the wait expires (Tansu does; measured: p50 0.43 s per hop at 1500 ms, 0.005 s at
10 ms) then adds up to 1.5 s to every hop of the pipeline. This transport is the stock driver
with that one number configurable (``STYLESTREAM_FETCH_WAIT_MS``, default 10 ms, read and checked
by :func:`streams.config.fetch_wait_ms_from_env`); it is exposed
through Faust's own extension point, the ``faust.transports`` entry point in pyproject.toml.

It also replaces one step of the stock driver that races a rebalance: seeking every assigned
partition back to its committed offset (:meth:`ConsumerThread.seek_to_committed`, which Faust
runs when recovery resumes the streams after a rebalance, and whenever its fetcher returns while
the flow is stopped). aiokafka's ``seek_to_committed`` takes the assignment, then awaits one
offset fetch per partition, then seeks; a rebalance during those awaits (a second worker
joining, a member's session expiring, the coordinator coming back after a broker restart) makes
it seek a partition of the previous generation and raise ``IllegalStateError: No current
assignment for partition``, out of Faust's recovery before it resumes the flow: the worker then
holds partitions it never fetches (``Stream has not started processing``) until it is
restarted (faust-streaming issues 44 and 54). Here the committed offsets are fetched in one
request and applied only if the assignment is still the one they were fetched for; otherwise
the seek is left to the newer assignment's own recovery.

And it takes the cost of Faust's per-message hand-over out of the common case: the stock fetch
loop hands every message to the streams with ``wait_first(deliver(message),
suspend_flow.wait())``, which starts four tasks and an ``asyncio.wait`` per message (about a
third of the busy time of an agent that only takes batches, by cProfile) so that a flow
suspension (a rebalance) can interrupt a delivery blocked on a full buffer. Here the delivery
runs inline first; only when it would block (full buffer, suspended flow, producer buffer
full) does it continue under the stock ``wait_first``, from where it stopped
(:meth:`Consumer.wait_first`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Coroutine, Generator, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from streams.config import fetch_wait_ms_from_env

log = logging.getLogger(__name__)


def fetch_wait_ms() -> int:
    """The consumers' fetch wait in ms (``STYLESTREAM_FETCH_WAIT_MS``, validated in
    :mod:`streams.config`)."""
    return fetch_wait_ms_from_env()


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts and builds its fetcher
        consumer._fetch_max_wait_ms = fetch_wait_ms()
        return consumer

    async def seek_to_committed(self) -> Mapping[Any, int | None]:
        """Seek the assigned partitions to their committed offsets, unless a rebalance
        replaced the assignment meanwhile (then seek nothing and return ``{}``)."""
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> dict[Any, int | None]:
        consumer = self._ensure_consumer()
        assignment = _assignment(consumer)
        if assignment is None or not assignment.tps:
            return {}
        tps = set(assignment.tps)
        fetched = await consumer._coordinator.fetch_committed_offsets(tps)
        if _assignment(consumer) is not assignment:
            log.info("rebalanced while fetching committed offsets; the new assignment seeks")
            return {}
        committed: dict[Any, int | None] = {}
        for tp in tps:
            meta = fetched.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            committed[tp] = offset
            if offset:  # as aiokafka: no commit (or 0) keeps the position it has
                consumer._fetcher.seek_to(tp, offset)
        return committed


def _assignment(consumer: Any) -> Any:
    """aiokafka's current assignment object (a new one per rebalance), or None."""
    subscription = consumer._subscription.subscription
    return None if subscription is None else subscription.assignment


class _Resumed:
    """Awaitable continuing a coroutine that was stepped by hand and yielded ``first`` (the
    future it waits on): the task awaiting this drives the rest of it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, step = self.coro, self.first
        while True:
            try:
                sent = yield step
            except BaseException as exc:  # noqa: BLE001 - thrown into the coroutine, as a task
                try:
                    step = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    step = coro.send(sent)
                except StopIteration as done:
                    return done.value


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """The fetch loop's ``wait_first(deliver(message), suspend_flow.wait())`` with the
        delivery run inline while it does not block; anything else as the stock one."""
        if (timeout is None and len(coros) == 2 and all(map(inspect.iscoroutine, coros))
                and not self.suspend_flow.is_set() and not self.should_stop):
            delivery, suspended = coros
            try:
                step = delivery.send(None)
            except StopIteration as done:
                suspended.close()
                return WaitResults([delivery], [done.value], False)
            except BaseException:
                suspended.close()
                raise
            coros = (_Resumed(delivery, step), suspended)
        return await super().wait_first(*coros, timeout=timeout)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    driver_version = faust_aiokafka.Transport.driver_version
