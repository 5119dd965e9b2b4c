"""The replay protocol: metrics on hand-made lists, and the live replay end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.replay import Future, future_of, list_metrics
from models.datasets import Interaction

CUT = 1512057600  # 2017-12-01 00:00 UTC+8: the sample's last full day starts a day later


def test_future_leaves_out_what_was_bought_and_marks_new_items() -> None:
    """Catches a bought item counted as a target (no list may show it) and new-to-shopper
    items confused with repeats."""
    before = [Interaction("u", "a", "view", 1), Interaction("u", "b", "purchase", 2),
              Interaction("v", "a", "view", 3)]
    after = [Interaction("u", "a", "cart", 5), Interaction("u", "b", "view", 6),
             Interaction("u", "c", "view", 7), Interaction("w", "a", "view", 8)]
    future = future_of(before, after)
    assert future.targets == {"u": {"a", "c"}}          # b was bought; w has no history
    assert future.new == {"u": {"c"}}


def test_list_metrics_count_hits_ranks_and_new_items() -> None:
    """Catches wrong HR/NDCG arithmetic, Recall@20 reported for five-item lists, and the
    new-item HR counting a repeat."""
    future = Future({"u": {"a", "c"}, "v": {"z"}}, {"u": {"c"}, "v": set()})
    lists = {"u": ["x", "a", "y", "z", "w"], "v": ["q"]}
    got = list_metrics(lists, future, ["u", "v"])
    assert got["HR@5"].tolist() == [1.0, 0.0]
    ideal = 1 + 1 / np.log2(3)
    assert got["NDCG@5"][0] == pytest.approx((1 / np.log2(3)) / ideal)
    assert np.isnan(got["Recall@20"]).all()
    assert got["HR@5 new"][0] == 0.0 and np.isnan(got["HR@5 new"][1])
    longer = list_metrics({"u": ["x"] * 5 + ["c"], "v": []}, future, ["u", "v"])
    assert longer["Recall@20"].tolist() == [0.5, 0.0]


def _write_taobao(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["user_id", "item_id", "category_id", "behavior",
                                         "timestamp"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.timeout(900)
def test_replay_of_any_log_through_the_live_workers(tmp_path: Path, data_dir: Path) -> None:
    """Catches the live replay losing shoppers (every shopper of the log gets a list), lists
    that show a bought item, a live system that disagrees with its offline twin (same recall,
    ranker, λ and explore weight: the workers must run with those chosen on validation), a
    table without the references, and an ILD@5 column left empty."""
    with (data_dir / "taobao" / "user_behavior.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    users = sorted({r["user_id"] for r in rows}, key=int)[:40]
    mine = [r for r in rows if r["user_id"] in set(users)]
    events = tmp_path / "events.csv"
    future = tmp_path / "future.csv"
    _write_taobao(events, [r for r in mine if int(r["timestamp"]) < CUT])
    _write_taobao(future, [r for r in mine if CUT <= int(r["timestamp"]) < CUT + 86400])
    lists_out = tmp_path / "lists.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("STYLESTREAM_KAFKA", "STYLESTREAM_REDIS")}
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "evaluate", "--protocol", "replay",
         "--events", str(events), "--future", str(future), "--lists-out", str(lists_out),
         "--no-ablations", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
         "--no-progress"], env=env, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stderr[-3000:]
    lists = json.loads(lists_out.read_text())
    shoppers = {r["user_id"] for r in mine if int(r["timestamp"]) < CUT}
    assert set(lists) == shoppers
    bought: dict[str, set[str]] = {}
    for r in mine:
        if int(r["timestamp"]) < CUT and r["behavior"] == "buy":
            bought.setdefault(r["user_id"], set()).add(r["category_id"])
    for user, items in lists.items():
        assert 1 <= len(items) <= 5
        assert not set(items) & bought.get(user, set())
        assert len(set(items)) == len(items)
    table = json.loads((tmp_path / "out" / "replay_taobao-category.json").read_text())
    rows_ = table["summary"]
    for name in ("stylestream live lists", "stylestream (offline twin)", "Popularity",
                 "Trending", "Own history (Eq. 3)", "ItemCF", "LightGCN"):
        assert name in rows_
    live, twin = rows_["stylestream live lists"], rows_["stylestream (offline twin)"]
    assert abs(live["HR@5"] - twin["HR@5"]) <= 0.1
    assert "stylestream live lists" not in table["versus_system"]
    # λ was chosen on the validation cut before T, from the grid, and reported
    assert "chosen on the validation cut" in table["info"]["decay λ per day"]
    # so was the repeat/explore weight w (the workers run with it), with its Pareto plot; and
    # the intra-list diversity is measured
    assert "chosen on the validation cut" in table["info"]["explore weight w"]
    assert (tmp_path / "out" / "replay_taobao-category_explore.png").is_file()
    assert 0.0 <= live["ILD@5"] <= 1.0
