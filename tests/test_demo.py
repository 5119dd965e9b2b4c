"""The main job: `stylestream demo` end to end as a user runs it (short, without training)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_serves_live_top5_lists_with_reasons(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("STYLESTREAM_KAFKA", "STYLESTREAM_REDIS")}
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "demo", "--seconds", "12", "--no-model",
         "--items", "80", "--users", "15", "--rate", "80", "--home", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    done = re.search(r"done: (\d+) Top-5 lists for (\d+) shoppers", out)
    assert done and int(done.group(1)) > 0 and int(done.group(2)) > 1
    # the board shows lists with reasons from the rule stages and co-visitation
    assert "Top-5 for u" in out
    assert re.search(r"same category as|matches your style|store [\d.]+ km away|often seen with",
                     out)
    # malformed events went to the dead-letter topic, and nothing was left running
    assert re.search(r"malformed→DLQ [1-9]", out)
    assert (tmp_path / "demo-catalog" / "catalog.jsonl").exists()
    # no published Top-5 shows the same product twice (title + colour, case and spacing folded)
    catalog = {}
    for line in (tmp_path / "demo-catalog" / "catalog.jsonl").read_text().splitlines():
        item = json.loads(line)
        catalog[str(item["item_id"])] = (" ".join(item["title"].lower().split()),
                                         item.get("colour", "").lower())
    lists = [json.loads(line) for line in (tmp_path / "lists.jsonl").read_text().splitlines()]
    assert len(lists) >= int(done.group(1))
    for message in lists:
        shown = [catalog.get(it["item_id"], it["item_id"]) for it in message["items"]]
        assert len(set(shown)) == len(shown), message
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
