"""Process-level tuning of the workers (streams/runtime.py)."""

from __future__ import annotations

import gc

from streams.runtime import GEN0_THRESHOLD, settle_heap


def test_settle_heap_freezes_the_startup_heap_and_raises_gen0() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_threshold() == (GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > frozen_before
        # cycles made after start-up are still collected
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
