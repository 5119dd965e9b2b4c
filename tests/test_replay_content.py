"""The replay with item content: H&M through the live workers with the fusion network, its
feature store and content recall, and the ablation rows (no pair features, no images, no text).

One replay of a small H&M slice (the first customers, real embedded Kafka and Redis, the real
``stylestream stream`` / ``rerank`` processes) is shared by the tests of this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.replay import (
    ReplayInputs,
    SystemConfig,
    decay_covis_chain,
    default_cut,
    default_step,
    keep_columns,
    recall_at,
)
from evaluation.replay_content import (
    MODALITY_ROWS,
    NO_PAIR_FEATURES,
    build_content,
    content_note,
    fusion_cut,
)
from evaluation.stream_state import StreamState
from models.datasets import load
from serving.pair_features import FEATURES
from serving.scorer import RerankRequest

USERS = 60


@pytest.fixture(scope="module")
def hm_replay(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict:
    """``stylestream evaluate --protocol replay --dataset hm --max-users 60`` (live, with the
    ablations); its table, lists, logs and cache."""
    tmp = tmp_path_factory.mktemp("hm-replay")
    env = {k: v for k, v in os.environ.items()
           if k not in ("STYLESTREAM_KAFKA", "STYLESTREAM_REDIS")}
    lists_out = tmp / "lists.json"
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "evaluate", "--protocol", "replay",
         "--dataset", "hm", "--data", str(data_dir), "--max-users", str(USERS),
         "--no-decay-search", "--lists-out", str(lists_out), "--out", str(tmp / "out"),
         "--cache", str(tmp / "cache"), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"tmp": tmp, "table": json.loads((tmp / "out" / "replay_hm.json").read_text()),
            "lists": json.loads(lists_out.read_text()), "data": data_dir}


@pytest.mark.timeout(1800)
def test_hm_replay_serves_the_fusion_network_and_reports_the_ablations(hm_replay: dict) -> None:
    """Catches the live rerank worker running without the fusion network or content recall
    (its log names the scorer chain), a table missing the no-pair-features / no-images /
    no-text rows, lists that show a bought article, and a live system that disagrees with its
    offline twin (same files, same code)."""
    log = (hm_replay["tmp"] / "cache" / "replay" / "replay-rerank.log").read_text()
    assert "+fusion-" in log and "with content recall" in log, log[-2000:]
    table = hm_replay["table"]
    rows = table["summary"]
    for name in ("stylestream live lists", "stylestream (offline twin)", "Popularity",
                 NO_PAIR_FEATURES, *MODALITY_ROWS.values()):
        assert name in rows, sorted(rows)
    live, twin = rows["stylestream live lists"], rows["stylestream (offline twin)"]
    assert abs(live["HR@5"] - twin["HR@5"]) <= 0.05
    assert content_note("hm") in table["notes"]
    events = load("hm", hm_replay["data"], max_users=USERS)
    cut = default_cut("hm", events)
    bought: dict[str, set[str]] = {}
    for e in events:
        if e.t < cut:
            bought.setdefault(e.user, set()).add(e.item)
    assert set(hm_replay["lists"]) == set(bought)
    for user, items in hm_replay["lists"].items():
        assert 1 <= len(items) <= 5 and not set(items) & bought[user]


@pytest.mark.timeout(600)
def test_modality_ablations_change_the_network_and_the_content_neighbours(
        hm_replay: dict) -> None:
    """Catches a "no images" or "no text" row that silently serves the full network (the
    ablated stores must give other scores and other content neighbours), a fusion network
    trained on events after the ranker's first training cut (its training log must end before
    it), and a "no pair features" ranker that still reads the stream's pair features."""
    events = load("hm", hm_replay["data"], max_users=USERS)
    cut = default_cut("hm", events)
    inputs = ReplayInputs("hm", "item", events, cut, default_step("hm"))
    config = SystemConfig()
    cache = hm_replay["tmp"] / "cache"
    systems = {ablate: build_content(inputs, config, ablate=ablate, root=hm_replay["data"],
                                     cache=cache, progress=False)
               for ablate in (None, "visual", "text")}
    full = systems[None]
    assert full is not None
    start = fusion_cut(cut, inputs.step, config)
    trained = (full.checkpoint.parent.parent / "events.csv").read_text().splitlines()[1:]
    assert trained and max(float(line.rsplit(",", 1)[1]) for line in trained) < start
    state = StreamState(config.decay)
    state.apply_all(e for e in events if e.t < cut)
    users = sorted(state.last_event)[:40]
    shoppers = [state.shopper(u, cut) for u in users]
    parts = {a: s.parts() for a, s in systems.items() if s is not None}
    seeds = sorted({i for s in shoppers for i in s.scores} & set(full.store.ids))
    assert seeds, "no article of the slice has features"
    candidates, _, popularity = recall_at(state, shoppers, cut, config.recall,
                                          parts[None].content)
    request = RerankRequest(shoppers, candidates, cut, popularity)
    base_full = decay_covis_chain(parts[None]).score(request)
    for ablate in ("visual", "text"):
        base_ablated = decay_covis_chain(parts[ablate]).score(request)
        a = np.array([s.score for row in base_full for s in row])
        b = np.array([s.score for row in base_ablated for s in row])
        assert a.size and not np.allclose(a, b), ablate
        assert parts[None].content(seeds, 5) != parts[ablate].content(seeds, 5), ablate
    rows = np.arange(3 * len(FEATURES), dtype=np.float32).reshape(3, -1) + 1
    kept = keep_columns(rows, (FEATURES.index("base_score"), FEATURES.index("log_content")))
    assert np.count_nonzero(kept[0]) == 2


def test_content_recall_at_an_earlier_cut_offers_only_items_seen_by_then() -> None:
    """Catches training and validation cuts whose content recall offers the next horizon's new
    arrivals (the content index is built from every item before T; at a cut before T an item
    first bought later does not exist yet, and the index at T holds no such items)."""
    from models.datasets import Interaction
    from serving.recall import RecallConfig

    state = StreamState(SystemConfig().decay)
    state.apply_all([Interaction("u", "a", "purchase", 0.0),
                     Interaction("v", "b", "purchase", 10.0)])
    index = {"a": [("b", 0.9), ("later", 0.8)]}
    candidates, _, _ = recall_at(state, [state.shopper("u", 20.0)], 20.0, RecallConfig(),
                                 lambda seeds, k: {s: index.get(s, [])[:k] for s in seeds})
    recalled = {c.item_id: c.sources for c in candidates[0]}
    assert "content" in recalled["b"] and "later" not in recalled
