"""Running ``stylestream web`` against embedded services, for the web-view tests."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from scripts.embedded import EmbeddedServices, free_port
from tests.streaming_helpers import listening


@contextlib.contextmanager
def web_server(services: EmbeddedServices, catalog: Path | None,
               *extra: str) -> Iterator[str]:
    """``stylestream web`` as its own process on a free port; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "scripts.cli", "web", "--port", str(port), *extra]
    if catalog is not None:
        cmd += ["--catalog", str(catalog)]
    with listening(cmd, port, "stylestream web", 30, stop_timeout=10,
                   env=dict(os.environ, **services.env())):
        yield f"http://127.0.0.1:{port}"


def recommendation(user: str, items: list[str], source_event_time: float | None = None,
                   model: str = "test") -> bytes:
    """A list in the recommendation contract."""
    now = time.time()
    return json.dumps({"user_id": user, "generated_at": now, "model_version": model,
                       "source_event_time": source_event_time or now - 0.05,
                       "items": [{"item_id": item, "score": float(5 - k),
                                  "reasons": [f"reason {k}"]}
                                 for k, item in enumerate(items)]}).encode()
