"""The replay of a log the project has never seen: ``stylestream evaluate --protocol replay
--events PATH [--future PATH] --lists-out PATH`` on later-slice-like inputs built from the public
data (other dates, int64 ids never seen, short logs, single-event shoppers, header-less or
reordered CSVs, CRLF, gzip, duplicates, unsorted rows, unknown behaviours, H&M articles without
a catalogue row or image). Each run must end with exit code 0 (or a one-line error), and its
lists must cover every shopper of the log with distinct items, none bought before the cut.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from evaluation.replay import NoRankerData, SystemConfig, decay_covis_chain, fit_ranker
from evaluation.replay_input import read_future, read_log
from models.datasets import DatasetError, Interaction
from streams.config import InputLimits

TAOBAO = ["user_id", "item_id", "category_id", "behavior", "timestamp"]
HM = ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]
LAST_DAY = 1512144000      # 2017-12-02 00:00 UTC+8: the Taobao sample's last day
SHIFT = 400 * 86400        # a later slice: 400 days on
LIMITS = InputLimits()


def _taobao_rows(data_dir: Path, users: int, seed: int = 3) -> list[dict]:
    with (data_dir / "taobao" / "user_behavior.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["timestamp"]) >= 1511539200]
    ids = sorted({r["user_id"] for r in rows}, key=int)
    kept = set(random.Random(seed).sample(ids, users))
    return [r for r in rows if r["user_id"] in kept]


def _unseen(rows: list[dict]) -> list[dict]:
    """The rows 400 days later, every user, item and category re-mapped to an int64 id the
    data never had."""
    maps: dict[str, dict[str, str]] = defaultdict(dict)
    base = {"user_id": 9_100_000_000_000_000_000, "item_id": 8_100_000_000_000_000_000,
            "category_id": 7_100_000_000_000_000_000}

    def remap(column: str, value: str) -> str:
        known = maps[column]
        return known.setdefault(value, str(base[column] + 7919 * len(known)))

    return [{**{c: remap(c, r[c]) for c in base}, "behavior": r["behavior"],
             "timestamp": str(int(r["timestamp"]) + SHIFT)} for r in rows]


def _write(path: Path, rows: list[dict], columns: list[str], header: bool = True,
           crlf: bool = False, tail: str = "") -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\r\n" if crlf else "\n",
                                extrasaction="ignore")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        handle.write(tail)
    return path


def _evaluate(tmp: Path, events: Path, future: Path | None, *extra: str,
              timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("STYLESTREAM_KAFKA", "STYLESTREAM_REDIS")}
    lists = tmp / "lists.json"
    command = [sys.executable, "-m", "scripts.cli", "evaluate", "--protocol", "replay",
               "--events", str(events), "--lists-out", str(lists), "--no-ablations",
               "--out", str(tmp / "out"), "--cache", str(tmp / "cache"), "--no-progress",
               *extra]
    if future is not None:
        command += ["--future", str(future)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads(lists.read_text(encoding="utf-8"))


def _check_lists(lists: dict, rows: list[dict], user: str, item: str) -> None:
    """Every shopper of ``rows`` has five distinct items, none of them bought in ``rows``
    (every H&M row is a purchase)."""
    shoppers = {r[user] for r in rows}
    assert set(lists) == shoppers
    purchases: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.get("behavior", "buy") == "buy":
            purchases[r[user]].add(r[item])
    for shopper, items in lists.items():
        assert len(items) == 5, (shopper, items)
        assert len(set(items)) == 5
        assert not set(items) & purchases[shopper]


# --- reading: fast, no services ----------------------------------------------------------------

def test_header_less_reordered_gzip_crlf_logs_read_the_same(tmp_path: Path,
                                                            data_dir: Path) -> None:
    """Catches a later slice refused for its form: Tianchi ships UserBehavior.csv without a
    header; columns may come in another order; gzip, CRLF line ends, a byte-order mark and a
    trailing blank line must read as the plain file does."""
    rows = _taobao_rows(data_dir, 5)
    plain = read_log(_write(tmp_path / "plain.csv", rows, TAOBAO), "category", LIMITS)
    forms = [
        _write(tmp_path / "bare.csv", rows, TAOBAO, header=False),
        _write(tmp_path / "order.csv", rows, ["timestamp", "behavior", "category_id",
                                              "user_id", "item_id"]),
        _write(tmp_path / "log.csv.gz", rows, TAOBAO, crlf=True, tail="\r\n"),
    ]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "plain.csv").read_bytes() + b"\n\n")
    for path in [*forms, bom]:
        got = read_log(path, "category", LIMITS)
        assert got.dataset == "taobao" and got.events == plain.events, path
        assert not got.skipped


def test_bad_rows_are_left_out_and_counted(tmp_path: Path, data_dir: Path) -> None:
    """Catches one odd row stopping the whole replay (or vanishing silently): unknown
    behaviours, empty fields, non-numeric timestamps and events the ingest contract refuses
    (an id over the length limit, a timestamp before 2000) are left out and counted by reason;
    duplicates count once and the rest is kept in time order."""
    rows = _taobao_rows(data_dir, 4)
    bad = [{**rows[0], "behavior": "share"}, {**rows[1], "item_id": ""},
           {**rows[2], "timestamp": "yesterday"}, {**rows[3], "user_id": "u" * 300},
           {**rows[4], "timestamp": "86400"}]
    mixed = list(reversed(rows)) + rows[:10] + bad
    got = read_log(_write(tmp_path / "mixed.csv", mixed, TAOBAO), "category", LIMITS)
    assert len(got.events) == len({tuple(r[c] for c in TAOBAO) for r in rows})
    assert [e.t for e in got.events] == sorted(e.t for e in got.events)
    assert got.skipped == Counter({"unknown behaviour 'share'": 1, "empty field": 1,
                                   "bad timestamp": 1,
                                   "refused by the event contract: bad_user_id": 1,
                                   "refused by the event contract: bad_timestamp": 1})
    assert "left out 5 row(s)" in (got.note("mixed.csv") or "")


def test_unreadable_logs_are_one_line_errors(tmp_path: Path) -> None:
    """Catches a traceback (or an empty replay) on a file that is no log: no readable event,
    an unknown layout, binary bytes; an empty --future file is nothing to score, not an
    error."""
    only_bad = _write(tmp_path / "bad.csv", [{"user_id": "1", "item_id": "2",
                                             "category_id": "3", "behavior": "share",
                                             "timestamp": "1512000000"}], TAOBAO)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 10)
    for path, message in ((only_bad, "no readable event"), (other, "neither a header"),
                          (binary, "cannot be read"),
                          (tmp_path / "absent.csv", "does not exist")):
        with pytest.raises(DatasetError, match=message) as caught:
            read_log(path, "category", LIMITS)
        assert "\n" not in str(caught.value)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert read_future(empty, "category", LIMITS).events == []
    assert read_future(_write(tmp_path / "header.csv", [], TAOBAO), "category",
                       LIMITS).events == []


def test_a_log_too_short_for_the_ranker_says_so() -> None:
    """Catches the too-short log crashing the ranker's training: single-event shoppers (no one
    active on both sides of a cut) and a log shorter than the horizon raise NoRankerData,
    which the command turns into lists without the final ranker."""
    config = SystemConfig()
    single = [Interaction(f"u{k}", f"i{k % 7}", "view", 1.7e9 + 3600.0 * k) for k in range(60)]
    with pytest.raises(NoRankerData):
        fit_ranker(single, single[-1].t + 1, 86400.0, config, decay_covis_chain())
    with pytest.raises(NoRankerData):
        fit_ranker(single[:20], single[19].t + 1, 86400.0, config, decay_covis_chain())


# --- the command: offline twin (no services) ------------------------------------------------------

@pytest.mark.timeout(600)
def test_short_and_single_event_logs_give_every_shopper_a_list(tmp_path: Path,
                                                              data_dir: Path) -> None:
    """Catches the replay failing on a log of one day (too short to train the final ranker)
    whose shoppers mostly have a single event, scored against a future with strangers: the
    offline twin still writes a Top-5 for every shopper of the log and a table."""
    rows = _unseen(_taobao_rows(data_dir, 40))
    last = LAST_DAY + SHIFT
    day = sorted((r for r in rows if last - 86400 <= int(r["timestamp"]) < last),
                 key=lambda r: int(r["timestamp"]))
    users = sorted({r["user_id"] for r in day})
    whole, single = set(users[::2]), set(users[1::2])
    first: dict[str, dict] = {}
    for r in day:
        if r["user_id"] in single:
            first.setdefault(r["user_id"], r)
    events = [r for r in day if r["user_id"] in whole] + list(first.values())
    future = [r for r in rows if int(r["timestamp"]) >= last]
    strangers = [{**r, "user_id": "1" + r["user_id"]} for r in future[:50]]
    done, lists = _evaluate(tmp_path, _write(tmp_path / "events.csv", events, TAOBAO),
                            _write(tmp_path / "future.csv", future + strangers, TAOBAO),
                            "--offline")
    assert "serving without the final ranker" in done.stderr
    _check_lists(lists, events, "user_id", "category_id")
    table = json.loads((tmp_path / "out" / "replay_taobao-category.json").read_text())
    assert table["info"]["final ranker"].startswith("none")


@pytest.mark.timeout(600)
def test_a_later_hm_period_with_unknown_articles(tmp_path: Path, data_dir: Path) -> None:
    """Catches the H&M replay failing when the articles are not in articles.csv and have no
    image (no content to build, and no recalled hit to calibrate the final ranker on): the
    lists of every customer are written, purchases left out."""
    with (data_dir / "hm" / "transactions.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    customers = sorted({r["customer_id"] for r in rows})
    kept = set(random.Random(5).sample(customers, 80))
    articles: dict[str, str] = {}
    later = [{"t_dat": (date.fromisoformat(r["t_dat"]) + timedelta(days=730)).isoformat(),
              "customer_id": r["customer_id"][::-1],
              "article_id": articles.setdefault(r["article_id"],
                                                f"{990000000 + len(articles):010d}"),
              "price": r["price"], "sales_channel_id": r["sales_channel_id"]}
             for r in rows if r["customer_id"] in kept]
    events = [r for r in later if r["t_dat"] < "2022-08-01"]
    future = [r for r in later if r["t_dat"] >= "2022-08-01"]
    done, lists = _evaluate(tmp_path, _write(tmp_path / "events.csv", events, HM),
                            _write(tmp_path / "future.csv", future, HM), "--offline",
                            "--data", str(data_dir))
    _check_lists(lists, events, "customer_id", "article_id")
    assert (tmp_path / "out" / "replay_hm.md").is_file()


# --- the command through the live workers ---------------------------------------------------------

@pytest.mark.timeout(900)
def test_live_replay_of_an_untidy_unseen_log(tmp_path: Path, data_dir: Path) -> None:
    """Catches the live path losing shoppers on a later slice it has never seen: int64 ids and
    dates 400 days on, no header, CRLF, unsorted, duplicated rows, unknown behaviours and one
    event the contract refuses (which the ingest worker would dead-letter: the replay must not
    wait for that shopper's list), single-event shoppers, no --future. Every shopper gets five
    distinct items from the real workers over Kafka and Redis, none bought."""
    rows = _unseen(_taobao_rows(data_dir, 30))
    rows = [r for r in rows if int(r["timestamp"]) < LAST_DAY + SHIFT]
    singles = [{**r, "user_id": str(int(r["user_id"]) + 1)} for r in rows[::400]]
    clean = rows + singles
    untidy = clean + clean[::7] + [{**rows[0], "behavior": "share"},
                                   {**rows[1], "user_id": "9" * 300}]
    random.Random(1).shuffle(untidy)
    events = _write(tmp_path / "events.csv", untidy, TAOBAO, header=False, crlf=True,
                    tail="\r\n")
    done, lists = _evaluate(tmp_path, events, None, timeout=840)
    assert "left out 2 row(s)" in done.stderr
    _check_lists(lists, clean, "user_id", "category_id")


def test_an_unwritable_lists_file_fails_before_the_replay(tmp_path: Path) -> None:
    """Catches a --lists-out path that cannot be written failing only after the whole replay
    (with a traceback): a directory is refused at once with one line and exit code 2, and a
    missing parent folder is created."""
    events = _write(tmp_path / "events.csv", [{"user_id": "1", "item_id": "2",
                                              "category_id": "3", "behavior": "pv",
                                              "timestamp": "1512000000"}], TAOBAO)
    command = [sys.executable, "-m", "scripts.cli", "evaluate", "--protocol", "replay",
               "--events", str(events), "--offline", "--no-progress",
               "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    refused = subprocess.run([*command, "--lists-out", str(tmp_path)], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"stylestream evaluate: cannot write --lists-out {tmp_path}: it is a directory"]
    nested = tmp_path / "new" / "folder" / "lists.json"
    done = subprocess.run([*command, "--lists-out", str(nested)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(nested.read_text(encoding="utf-8")) == {"1": ["3"]}  # viewed, not bought
