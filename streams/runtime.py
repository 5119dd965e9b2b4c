"""Process-level tuning for long-running workers (``stylestream rerank``, and every Faust
worker started by :func:`streams.app.run_worker`: ``stylestream stream`` and the ingest
benchmark's agents).

CPython's cyclic garbage collector runs a young-generation pass every 700 net container
allocations and, now and then, a full pass over every tracked object. A worker's heap after
start-up is large (aiokafka, Faust, redis-py, numpy, the catalog and scorer: ~90,000 tracked
objects for a bare rerank worker) and never becomes garbage, yet each full pass walks all of it,
while a micro-batch allocates tens of thousands of short-lived records. Measured with an
in-process driver of the rerank worker (256 shoppers per micro-batch): ~30 % of its CPU time
went to the collector (~2,900 -> 3,800-4,200 lists/s with :func:`settle_heap`). The Faust ingest
worker at saturation (15,000 events/s and more, 2026-11-30) spent ~46 µs of CPU per event
without it and ~38 µs with it (``stylestream bench ingest --only throughput``, product agent,
runs alternated); at the 4,200-5,000 events/s of an earlier version no difference showed.
Its full passes also stop the stream: one took 82 ms in the middle of a 1,000 events/s
freshness run (measured with ``gc.callbacks``), delaying every event in flight behind it.

:func:`settle_heap` moves everything alive at start-up into the permanent generation
(``gc.freeze``), so later passes skip it, and raises the young-generation threshold so that a
micro-batch triggers a handful of passes instead of dozens. Reference counting still frees
almost everything at once; only reference cycles wait for the collector, as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Net container allocations between two young-generation passes (CPython's default is 700).
GEN0_THRESHOLD = 10_000


def settle_heap(gen0_threshold: int = GEN0_THRESHOLD) -> None:
    """Collect once, freeze the surviving start-up heap and raise the gen-0 threshold."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic-collector passes inside the block (a rerank micro-batch's recall and scoring).

    A micro-batch keeps ~100 candidates and scored records per shopper alive until its lists
    are published: hundreds of thousands of young containers, each surviving the passes that
    their own allocation triggers, so every pass walks more of them (measured: ~5 µs per
    record created instead of ~0.3 µs without passes). Reference counting still frees them at
    the end of the batch; only reference cycles wait for the next pass after the block. A
    collector already disabled stays disabled."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
