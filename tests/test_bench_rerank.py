"""``stylestream bench rerank`` times the rerank path as served, beside its baselines."""

from __future__ import annotations

import json

from scripts.cli import main


def test_bench_rerank_reports_the_served_path_per_stage(tmp_path, capsys) -> None:
    """Catches a bench that no longer runs the served path (recall with the history source, the
    chain with the calibrated final ranker, the diversity/explore final list), drops its
    same-run baselines, or reports stages that do not add up to the total."""
    out = tmp_path / "rerank.json"
    code = main(["bench", "rerank", "--device", "cpu", "--shoppers", "2", "--candidates", "8",
                 "--items", "50", "--history", "3", "--seconds", "0.01", "--images", "0",
                 "--texts", "0", "--path-shoppers", "6", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    served = result["served_path"]
    us = {row["stage"]: row["us_per_list"] for row in served["rows"]}
    parts = [us[s] for s in us if not s.startswith(("total", "baseline", "pair features alone",
                                                    "ranker MLP"))]
    assert len(parts) == 4 and abs(sum(parts) - us["total"]) < 1e-6 * max(1.0, us["total"])
    assert {"baseline: ranker MLP, one call per shopper",
            "ranker MLP as served: the batch's rows in fixed 256-row passes",
            "baseline: final list over every candidate sorted"} <= set(us)
    assert served["shoppers"] == 6 and served["candidates_per_list"] > 30   # history + others
    assert "Served rerank path" in capsys.readouterr().out
    assert main(["bench", "rerank", "--path-shoppers", "-1", "--out", str(out)]) == 2
