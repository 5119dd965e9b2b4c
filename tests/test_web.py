"""``stylestream web``: the live page over real Kafka (Tansu), served by the real process.

The browser test drives Debian's headless Chromium over the DevTools protocol: it opens the
page, runs the real ingest and rerank workers on events produced *during* the test, and reads
the list off the rendered page; its screenshot is ``docs/web.png``. The other tests talk HTTP
and server-sent events to the same server.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import socket
import time
from pathlib import Path

import aiohttp
import pytest
import redis

from models.demo_catalog import generate_demo_catalog
from scripts.embedded import EmbeddedServices
from tests.browser import chromium_page
from tests.streaming_helpers import event_bytes, produce, running, wait_for
from tests.web_helpers import recommendation, web_server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("web") / "catalog"
    generate_demo_catalog(directory, n_items=40, seed=3)
    return directory


def catalog_ids(catalog: Path) -> list[str]:
    return [json.loads(line)["item_id"]
            for line in (catalog / "catalog.jsonl").read_text().splitlines()]


async def read_sse(url: str, until, timeout: float = 20.0) -> list[tuple[str, dict]]:
    """Read server-sent events from ``url`` until ``until(messages)`` or the timeout."""
    messages: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        kind = None
        while time.monotonic() < deadline and not until(messages):
            try:
                line = await asyncio.wait_for(resp.content.readline(), 1.0)
            except TimeoutError:
                continue
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                kind = text[7:]
            elif text.startswith("data: "):
                messages.append((kind or "message", json.loads(text[6:])))
    return messages


def test_stream_pushes_the_chosen_shoppers_lists_and_events(services: EmbeddedServices,
                                                            catalog: Path) -> None:
    """Catches a stream that misses lists or events produced after the page connected, leaks
    other shoppers' lists into it, loses product titles/images, or dies on a malformed record."""
    ids = catalog_ids(catalog)
    with web_server(services, catalog) as base:
        async def scenario() -> list[tuple[str, dict]]:
            async def produce_later() -> None:
                await asyncio.sleep(1.5)
                produce(services, "recommendations", [
                    (b"x", b"not json"),
                    (b"other", recommendation("other", ids[5:10])),
                    (b"ana", recommendation("ana", ids[:5])),
                ])
                produce(services, "behavior-events", [
                    (b"ana", event_bytes("ev-ana-1", "ana", ids[7], "cart", time.time())),
                    (b"bob", event_bytes("ev-bob-1", "bob", ids[8], "view", time.time())),
                ])

            task = asyncio.create_task(produce_later())
            got = await read_sse(
                f"{base}/api/stream?user=ana",
                lambda ms: {"rec", "event"} <= {k for k, _ in ms}
                and any(k == "stats" and m["stats"]["lists_total"] >= 2 for k, m in ms))
            await task
            return got

        messages = asyncio.run(scenario())
        kinds = [k for k, _ in messages]
        assert kinds[0] == "state"
        recs = [m for k, m in messages if k == "rec"]
        assert [r["user_id"] for r in recs] == ["ana"]
        items = recs[0]["items"]
        assert [i["item_id"] for i in items] == ids[:5]
        assert all(i["title"] != i["item_id"] and i["image_url"] == f"/images/{i['item_id']}"
                   for i in items)
        events = [m for k, m in messages if k == "event"]
        assert [e["event_id"] for e in events] == ["ev-ana-1"]
        stats = [m["stats"] for k, m in messages if k == "stats"][-1]
        assert stats["lists_total"] == 2 and stats["skipped_total"] >= 1
        assert stats["freshness_p50_ms"] is not None and stats["lists_per_s"] > 0

        async def snapshot() -> dict:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{base}/api/state?user=ana") as resp:
                return await resp.json()

        state = asyncio.run(snapshot())
        assert [i["item_id"] for i in state["recommendation"]["items"]] == ids[:5]
        # without ?user= the stream follows the shopper behind the newest list
        newest = asyncio.run(read_sse(f"{base}/api/stream", lambda ms: len(ms) >= 1))
        assert newest[0][0] == "state" and newest[0][1]["user"] == "ana"
        assert state["events"][0]["item_id"] == ids[7]
        assert set(state["users"]) == {"ana", "other"}


def raw_get(base: str, path: str) -> int:
    """Status of a GET sent byte for byte (no client-side normalisation of ``..``)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        head = sock.recv(4096).decode(errors="replace")
    return int(head.split()[1])


def test_images_are_the_catalogs_own_and_nothing_outside_it(
        services: EmbeddedServices, catalog: Path, tmp_path: Path) -> None:
    """Catches serving files a request names (``..``, encoded ``..``, absolute paths), a catalog
    entry whose relative image path or symlink leads out of the catalog directory, and
    non-image files; the catalog's own images (relative, or absolute as imported catalogs name
    them) are served."""
    own = tmp_path / "catalog"
    shutil.copytree(catalog, own)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the web")
    outside = tmp_path / "data" / "images" / "42.jpg"
    outside.parent.mkdir(parents=True)
    shutil.copy(own / "images" / "D00001.jpg", outside)
    (own / "images" / "escape.jpg").symlink_to(secret)
    (own / "notes.txt").write_text("not an image")
    crafted = [("dotdot", "../secret.jpg"), ("link", "images/escape.jpg"),
               ("text", "notes.txt"), ("imported", str(outside))]
    with (own / "catalog.jsonl").open("a") as out:
        for item_id, image in crafted:
            out.write(json.dumps({"item_id": item_id, "title": item_id, "category": "Hats",
                                  "group": "Accessories", "image": image}) + "\n")
    with web_server(services, own) as base:
        assert raw_get(base, "/images/D00000") == 200
        assert raw_get(base, "/images/imported") == 200
        for path in ("/images/dotdot", "/images/link", "/images/text", "/images/missing",
                     "/images/..%2fcatalog.jsonl", "/images/..%2f..%2fsecret.jpg",
                     "/images/%2fetc%2fpasswd", "/catalog/../catalog.jsonl",
                     "/static/..%2f..%2fserving%2fwebview.py", "/static/../webview.py"):
            assert raw_get(base, path) in (403, 404), path
        assert raw_get(base, "/") == 200 and raw_get(base, "/static/app.js") == 200


def test_page_in_chromium_shows_a_list_the_workers_produce_during_the_test(
        services: EmbeddedServices, catalog: Path, tmp_path: Path) -> None:
    """Catches a page that does not load, does not run its script, misses a list published
    after it opened (SSE broken), shows a stale or different list than the worker's latest,
    or shows no product images — in a real browser against the real workers."""
    ids = catalog_ids(catalog)
    rng = random.Random(11)
    behaviors = ["view", "view", "view", "favorite", "cart"]
    history = [(f"shopper-{rng.randrange(8)}", rng.choice(ids[:24]), rng.choice(behaviors))
               for _ in range(300)]
    history += [("ana", ids[k], b) for k, b in ((1, "view"), (2, "view"), (3, "favorite"),
                                                (4, "cart"), (2, "cart"))]

    def records() -> list[tuple[bytes, bytes]]:
        """The history as events of the last second, stamped when produced (so freshness on
        the page is the pipeline's own latency)."""
        now = time.time()
        return [(user.encode(), event_bytes(f"ev-{k}", user, item, behavior,
                                            now - (len(history) - k) * 0.002))
                for k, (user, item, behavior) in enumerate(history)]

    store = redis.Redis.from_url(services.redis_url)

    def latest_in_redis() -> list[str]:
        raw = store.get("rec:ana")
        return [i["item_id"] for i in json.loads(raw)["items"]] if raw else []

    page_items = ("[...document.querySelectorAll('#top5 li[data-item-id]')]"
                  ".map(li => li.dataset.itemId)")
    with web_server(services, catalog) as base, \
            running(services, ["stream"], ["rerank", "--catalog", str(catalog)]):
        # a warm-up event first, so the lists under test come from a serving pipeline and the
        # page's freshness is the pipeline's latency, not the workers' start-up
        produce(services, "behavior-events", [(b"warm-up", event_bytes(
            "warm-up", "warm-up", ids[0], "view", time.time()))])
        assert wait_for(lambda: store.get("rec:warm-up") is not None, 120), "no first list"

        async def scenario() -> tuple[list[str], list[str], dict]:
            async with chromium_page(tmp_path / "chromium", height=1000) as page:
                await page.navigate(f"{base}/?user=ana")
                assert await page.wait_for("document.getElementById('live').textContent "
                                           "=== 'live'", 30), "page never connected its stream"
                assert await page.evaluate(f"{page_items}.length") == 0
                produce(services, "behavior-events", records())  # during the test
                shown: list[str] = []
                expected: list[str] = []
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    shown = await page.evaluate(page_items) or []
                    expected = latest_in_redis()
                    if len(shown) == 5 and shown == expected:
                        break
                    await asyncio.sleep(0.5)
                await page.wait_for("[...document.querySelectorAll('#top5 img')].every("
                                    "i => i.complete && i.naturalWidth > 0)", 10)
                await asyncio.sleep(1.5)  # one stats tick, so the header shows rates
                facts = await page.evaluate("""({
                    images: [...document.querySelectorAll('#top5 img')]
                              .filter(i => i.complete && i.naturalWidth > 0).length,
                    reasons: [...document.querySelectorAll('#top5 .reasons li')].length,
                    events: [...document.querySelectorAll('#events tr[data-event-id]')]
                              .map(tr => tr.dataset.eventId),
                    lists: Number(document.getElementById('lists-total').textContent),
                    p50: document.getElementById('fresh-p50').textContent})""")
                await page.screenshot(REPO / "docs" / "web.png")
                return shown, expected, facts

        shown, expected, facts = asyncio.run(scenario())
    assert len(shown) == 5 and shown == expected, (shown, expected)
    assert facts["images"] == 5 and facts["reasons"] >= 5
    ana_events = {f"ev-{k}" for k, (u, _, _) in enumerate(history) if u == "ana"}
    assert facts["events"] and set(facts["events"]) <= ana_events
    assert facts["lists"] >= 1 and facts["p50"].endswith("ms")
    picture = (REPO / "docs" / "web.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and len(picture) > 10_000


def test_demo_prints_the_url_of_a_page_with_live_lists_and_images(tmp_path: Path) -> None:
    """Catches ``stylestream demo`` not starting the web view, printing a wrong URL, or a view
    that is not fed by the demo's live lists (with their product images)."""
    import os
    import re
    import subprocess
    import sys
    import threading
    import urllib.request

    env = {k: v for k, v in os.environ.items()
           if k not in ("STYLESTREAM_KAFKA", "STYLESTREAM_REDIS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "demo", "--seconds", "25", "--no-model",
         "--items", "60", "--users", "10", "--rate", "60", "--home", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        def url() -> str | None:
            found = [m.group(1) for line in list(lines)
                     if (m := re.search(r"live web view: (http://\S+)", line))]
            return found[0] if found else None

        assert wait_for(lambda: url() is not None or proc.poll() is not None, 240)
        base = url()
        assert base, "".join(lines)[-3000:]

        def served() -> dict | None:
            try:
                with urllib.request.urlopen(f"{base}api/state", timeout=5) as resp:
                    state = json.load(resp)
            except OSError:
                return None
            rec = state.get("recommendation")
            # the first lists of a cold start may be short (nothing trending yet)
            return state if rec and len(rec["items"]) == 5 else None

        assert wait_for(lambda: served() is not None, 60), "no live list on the demo's page"
        state = served()
        assert state is not None
        items = state["recommendation"]["items"]
        assert len(items) == 5 and all(i["image_url"] for i in items)
        with urllib.request.urlopen(base + items[0]["image_url"].lstrip("/")) as resp:
            assert resp.headers["Content-Type"] == "image/jpeg" and len(resp.read()) > 500
        assert state["stats"]["events_per_s"] > 0
        with urllib.request.urlopen(base, timeout=5) as resp:
            assert b"/static/app.js" in resp.read()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
