"""The live web view: one page, served by the project itself, fed by the live topics.

``recommendations`` and ``behavior-events`` are read without a consumer group
(:func:`serving.live_feed.follow_topic`) into a :class:`~serving.live_feed.LiveBoard`; the page
(``serving/static/``, plain HTML/CSS/JS, nothing from a CDN) opens a server-sent-events stream
for one shopper and redraws that shopper's Top-5 (with product images and reasons) and latest
events as they arrive, plus lists/s, events/s and freshness once a second.

Routes: ``/`` the page · ``/static/…`` its files · ``/images/<item_id>`` the product image the
catalog names for an item · ``/api/state?user=U`` one JSON snapshot ·
``/api/stream?user=U`` the SSE stream (no ``user``: follow the shopper behind the newest list).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from models.catalog import CatalogItem, load_catalog
from serving.live_feed import LiveBoard, follow_topic, parse_json

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
STATS_EVERY_S = 1.0


def static_dir() -> Path:
    """``serving/static`` as installed (package data)."""
    return Path(str(resources.files("serving").joinpath("static")))


@dataclass
class CatalogImages:
    """Titles and images of catalog items, addressed by item id (``/images/<item_id>``).

    Only the image file the catalog names for an item is ever served, so a request cannot name
    a path. A relative image path (the demo catalog's ``images/…``) must stay inside the
    catalog directory once resolved (``..`` or a symlink pointing out is refused); an absolute
    one is how an imported catalog references its data set's images in place, and is served as
    named."""

    root: Path | None
    items: dict[str, CatalogItem] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: str | Path | None) -> CatalogImages:
        if directory is None:
            return cls(None)
        root = Path(directory).resolve()
        return cls(root, load_catalog(root))

    def image_path(self, item_id: str) -> Path | None:
        """The image file of ``item_id``, or ``None`` when there is none to serve."""
        item = self.items.get(item_id)
        if self.root is None or item is None or not item.image or "\x00" in item.image:
            return None
        named = Path(item.image)
        try:
            path = (self.root / named).resolve()
        except (OSError, RuntimeError):
            return None
        if not named.is_absolute() and not path.is_relative_to(self.root):
            return None
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            return None
        return path

    def describe(self, item_id: str) -> dict:
        item = self.items.get(item_id)
        if item is None:
            return {"title": item_id, "image_url": None}
        return {"title": item.title, "category": item.category, "colour": item.colour,
                "image_url": f"/images/{quote(item_id, safe='')}" if item.image else None}


def enrich_recommendation(message: dict | None, catalog: CatalogImages) -> dict | None:
    if message is None:
        return None
    items = [dict(item, **catalog.describe(str(item.get("item_id"))))
             for item in message.get("items", []) if isinstance(item, dict)]
    return dict(message, items=items)


def enrich_event(event: dict, catalog: CatalogImages) -> dict:
    return dict(event, **catalog.describe(str(event.get("item_id"))))


def snapshot(board: LiveBoard, catalog: CatalogImages, user: str | None) -> dict:
    events = list(board.events.get(user, ())) if user else []
    return {"user": user,
            "recommendation": enrich_recommendation(board.lists.get(user), catalog)
            if user else None,
            "events": [enrich_event(e, catalog) for e in reversed(events)],
            "stats": board.stats(), "users": board.recent_users(100)}


def sse(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


BOARD = web.AppKey("board", LiveBoard)
CATALOG = web.AppKey("catalog", CatalogImages)
CLOSING = web.AppKey("closing", asyncio.Event)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(static_dir() / "index.html",
                            headers={"Cache-Control": "no-cache"})


async def item_image(request: web.Request) -> web.FileResponse:
    path = request.app[CATALOG].image_path(request.match_info["item_id"])
    if path is None:
        raise web.HTTPNotFound(text="no image for this item")
    return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})


async def state(request: web.Request) -> web.Response:
    user = request.query.get("user") or request.app[BOARD].newest_user()
    return web.json_response(snapshot(request.app[BOARD], request.app[CATALOG], user))


async def stream(request: web.Request) -> web.StreamResponse:
    """SSE: ``state`` (a snapshot, on connect and when the followed shopper changes), ``rec``,
    ``event`` (the shopper's behaviour events) and ``stats`` (once a second)."""
    board, catalog = request.app[BOARD], request.app[CATALOG]
    closing = request.app[CLOSING]
    user = request.query.get("user") or None
    follow_newest = user is None
    queue: asyncio.Queue[tuple[str, str, dict]] = asyncio.Queue(maxsize=1000)

    def listener(kind: str, who: str, payload: dict) -> None:
        if follow_newest or who == user:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((kind, who, payload))

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    board.listeners.append(listener)
    try:
        if follow_newest:
            user = board.newest_user()
        await response.write(sse("state", snapshot(board, catalog, user)))
        next_stats = time.monotonic() + STATS_EVERY_S
        while not closing.is_set():
            timeout = max(0.0, next_stats - time.monotonic())
            try:
                kind, who, payload = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                await response.write(sse("stats", {"stats": board.stats(),
                                                   "users": board.recent_users(100)}))
                next_stats = time.monotonic() + STATS_EVERY_S
                continue
            if user is None and kind == "rec":
                user = who  # following the newest: pin the first shopper served
                await response.write(sse("state", snapshot(board, catalog, user)))
            elif who != user:
                continue
            elif kind == "rec":
                await response.write(sse("rec", enrich_recommendation(payload, catalog) or {}))
            else:
                await response.write(sse("event", enrich_event(payload, catalog)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        board.listeners.remove(listener)
    return response


def create_app(board: LiveBoard, catalog: CatalogImages) -> web.Application:
    app = web.Application()
    app[BOARD] = board
    app[CATALOG] = catalog
    app[CLOSING] = asyncio.Event()

    async def on_shutdown(app: web.Application) -> None:
        app[CLOSING].set()

    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/", page)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/images/{item_id}", item_image)
    app.router.add_static("/static/", static_dir(), follow_symlinks=False)
    return app


async def feed_board(board: LiveBoard, bootstrap: str, recommendations: str, events: str,
                     backlog: int, stop: asyncio.Event,
                     kafka_kwargs: Mapping[str, Any] | None = None) -> None:
    """Keep ``board`` fed from both topics until ``stop``; a broker outage is retried."""

    async def one(topic: str, add) -> None:
        while not stop.is_set():
            try:
                async for record in follow_topic(bootstrap, topic, backlog=backlog, stop=stop,
                                                 client_kwargs=kafka_kwargs):
                    add(parse_json(record.value))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker unreachable or topic missing: say so, retry
                log.warning("reading %s failed (%s); retrying in 2 s", topic, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

    await asyncio.gather(one(recommendations, board.add_recommendation),
                         one(events, board.add_event))


async def serve(bootstrap: str, recommendations: str, events: str, catalog: CatalogImages,
                host: str, port: int, backlog: int, stop: asyncio.Event,
                on_ready=None, kafka_kwargs: Mapping[str, Any] | None = None) -> None:
    """Run the web view until ``stop`` is set; ``on_ready(url)`` once it accepts requests."""
    board = LiveBoard()
    app = create_app(board, catalog)
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    feeder = asyncio.create_task(feed_board(board, bootstrap, recommendations, events,
                                            backlog, stop, kafka_kwargs))
    try:
        bound = site._server.sockets[0].getsockname()[1] if site._server else port  # noqa: SLF001
        if on_ready is not None:
            on_ready(f"http://{host}:{bound}/")
        await stop.wait()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await runner.cleanup()
