"""The fault suite at CI size (``stylestream bench faults`` with a short schedule) against the
real services: a durable stack, both workers, a steady offered load with malformed records mixed
in, and every fault of the suite once: SIGKILL of the ingest worker, SIGKILL of the rerank
worker, Redis frozen (SIGSTOP), Redis restarted on its AOF, the broker restarted on its S3 data,
and a two-worker group whose first worker dies mid-batch."""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.bench_faults import PHASES, add_arguments, run_suite, table


def test_every_fault_recovers_with_exact_scores_fresh_lists_and_an_exact_dlq(
        tmp_path: Path) -> None:
    """Catches lost or double-counted events after a crash (scores off Eq. 1–3 for any
    shopper), shoppers left without a list newer than their last event, malformed records
    lost from or added to the DLQ, and a fault after which the system never serves again
    (no list after it: recovery -1)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--events-per-phase", "500", "--rate", "200", "--users", "250",
                              "--items", "400", "--repeats", "1", "--freeze-seconds", "4",
                              "--settle-timeout", "100", "--partitions", "2"])
    results = run_suite(args, tmp_path / "faults")
    print(table(results))
    assert [r.phase for r in results] == list(PHASES)
    for r in results:
        assert r.faults == 1, r
        assert r.shoppers > 100, r
        assert r.wrong_scores == 0 and r.worst_rel_error < 1e-9, r
        assert r.stale_lists == 0, r
        assert r.dlq_exact and r.dlq_found == r.dlq_expected > 0, r
        assert r.lost_acked == 0, r
        assert r.recover_s and all(x >= 0 for x in r.recover_s), r
        assert r.ok, r
